"""``medrag train decision``: the calibrated yes / no / maybe decider over the reader's scores, on PubMedQA.

Each question is searched through the real Assistant (router, Weaviate, fusion), and the reader scores "Yes",
"No" and "Maybe" after one pass over the top-ranked source, exactly as an answer decides (``decision_evidence``,
``reader_scores``). With ``conclusions`` each training question also gives a second row: the reader's scores
with the authors' conclusion (``LONG_ANSWER``) as the evidence, the clearest statement of the answer there is;
those rows only ever train, they are never scored. The questions are divided by the named group split every
medrag model shares (so the fusion module that picked a test question's evidence never trained on it either).
On the train and validation parts, 5-fold cross-validation grouped by PMID chooses C and whether the conclusion
rows help (by log loss: the decision is shown as a probability), and measures the abstention threshold and the
calibration; the shipped model is fitted on those parts and the test part is scored once.

Reader scores are cached in ``<cache_dir>/decision/<reader>.jsonl``, one line per prompt as it is scored, so an
interrupted run resumes where it stopped and retraining costs seconds.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold
from tqdm import tqdm

from medrag.datasets.pubmedqa import PubMedQARecord, read_pubmedqa
from medrag.datasets.splits import DEFAULT_SPLIT, Split
from medrag.generate.decision import LABELS, OPTIONS, DecisionModel, decision_evidence, decision_prompt
from medrag.generate.evidence import EvidenceSentence, quoted_evidence
from medrag.lm.base import LanguageModel, renormalised
from medrag.metrics import bootstrap_interval, expected_calibration_error, label_metrics, selective_accuracy
from medrag.reporting import pyplot, save_confusion_matrix, save_figure, save_reliability_diagram
from medrag.text.sentences import split_sentences

if TYPE_CHECKING:
    from medrag.assistant import Assistant

C_GRID = (0.01, 0.1, 1.0, 10.0)
BATCH = 32
ABSTAIN_TARGET = 0.80
"""Accuracy the decided questions must reach in cross-validation for the abstention threshold."""
THRESHOLDS = np.round(np.arange(0.34, 0.96, 0.02), 2)


class ScoreCache:
    """Reader scores of prompts already scored: a JSON-lines file appended line by line as each is computed."""

    def __init__(self, cache_dir: Path, reader: LanguageModel) -> None:
        slug = re.sub(r"[^a-z0-9.]+", "-", reader.name.lower()).strip("-")
        self.path = Path(cache_dir) / "decision" / f"{slug}.jsonl"
        self.reader = reader
        self.scores: dict[str, list[float]] = {}
        if self.path.is_file():
            for line in self.path.read_text().splitlines():
                if line.strip():  # a line cut short by a kill is skipped and scored again
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:
                        continue
                    self.scores[entry["key"]] = entry["scores"]

    def __call__(self, question: str, evidence: Sequence[EvidenceSentence]) -> np.ndarray:
        prompt = decision_prompt(self.reader, question, evidence)
        key = hashlib.sha256(f"{self.reader.name}\n{prompt}".encode()).hexdigest()
        if key not in self.scores:
            self.scores[key] = self.reader.option_log_probabilities(prompt, OPTIONS)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a") as out:
                out.write(json.dumps({"key": key, "scores": self.scores[key]}) + "\n")
        return np.array(self.scores[key])


def question_scores(assistant: Assistant, records: Sequence[PubMedQARecord], cache: ScoreCache, *,
                    tenant: str | None, progress: bool = True) -> np.ndarray:
    """Reader scores of each question over the top source the pipeline finds for it."""
    rows = []
    with tqdm(total=len(records), desc="reader scores", unit="question", disable=not progress) as bar:
        for start in range(0, len(records), BATCH):
            chunk = records[start:start + BATCH]
            results = assistant.search_batch([{"question": record.question} for record in chunk], tenant=tenant)
            for record, result in zip(chunk, results, strict=True):
                rows.append(cache(record.question, decision_evidence(result)))
                bar.update()
    return np.stack(rows)


def conclusion_evidence(record: PubMedQARecord) -> list[EvidenceSentence]:
    """The authors' conclusion as numbered evidence sentences (no vectors: the prompt needs only the text)."""
    return quoted_evidence("conclusion", record.pmid, split_sentences(record.long_answer))


def conclusion_scores(records: Sequence[PubMedQARecord], cache: ScoreCache, *, progress: bool = True
                      ) -> tuple[np.ndarray, list[int]]:
    """Reader scores with each record's conclusion as the evidence, and the indices of the records that have one."""
    kept = [index for index, record in enumerate(records) if record.long_answer]
    rows = [cache(records[index].question, conclusion_evidence(records[index]))
            for index in tqdm(kept, desc="conclusion scores", unit="question", disable=not progress)]
    return (np.stack(rows) if rows else np.zeros((0, len(OPTIONS)))), kept


def zero_shot_probabilities(scores: np.ndarray) -> np.ndarray:
    """The reader's own probabilities, renormalised over the three options."""
    return np.array([renormalised(row) for row in scores])


def cross_validated(scores: np.ndarray, labels: Sequence[str], groups: Sequence[str], c: float, *,
                    extra: tuple[np.ndarray, list[str], list[str]] | None, folds: int, seed: int) -> np.ndarray:
    """Out-of-fold P(yes, no, maybe) for every row of ``scores``; ``extra`` rows (scores, labels, groups) join the
    training folds of their group and are never predicted."""
    probabilities = np.zeros((len(labels), len(LABELS)))
    splitter = StratifiedGroupKFold(folds, shuffle=True, random_state=seed)
    labels, groups = list(labels), list(groups)
    for train, held in splitter.split(scores, labels, groups):
        fit_scores, fit_labels = scores[train], [labels[i] for i in train]
        if extra is not None:
            held_groups = {groups[i] for i in held}
            keep = [i for i, group in enumerate(extra[2]) if group not in held_groups]
            fit_scores = np.concatenate([fit_scores, extra[0][keep]])
            fit_labels = fit_labels + [extra[1][i] for i in keep]
        probabilities[held] = DecisionModel.fit(fit_scores, fit_labels, {}, c=c).probabilities(scores[held])
    return probabilities


def abstention(probabilities: np.ndarray, labels: Sequence[str], target: float = ABSTAIN_TARGET) -> dict[str, Any]:
    """The lowest confidence at which the decided questions reach ``target`` accuracy (None when none does), from
    out-of-fold probabilities, with the whole coverage curve."""
    confidence = probabilities.max(1)
    correct = [LABELS[index] == label for index, label in zip(probabilities.argmax(1), labels, strict=True)]
    curve = selective_accuracy(confidence, correct, THRESHOLDS)
    reached = [row for row in curve if row["coverage"] >= 0.1 and row["accuracy"] >= target]
    chosen = reached[0] if reached else {"threshold": None, "coverage": 1.0, "accuracy": float(np.mean(correct))}
    return {"target_accuracy": target, **chosen, "curve": curve}


def held_out_figures(labels: Sequence[str], probabilities: np.ndarray, majority: str) -> dict[str, Any]:
    """Test-part metrics of the model beside always answering ``majority`` (the training labels' majority), with
    95% bootstrap intervals of the accuracy and of the paired gain over the majority class."""
    metrics = label_metrics(list(labels), probabilities, LABELS, ["pubmedqa"] * len(labels))
    correct = np.array([LABELS[index] == label for index, label in zip(probabilities.argmax(1), labels, strict=True)])
    majority_correct = np.array([label == majority for label in labels])
    return {"metrics": metrics, "accuracy_ci95": bootstrap_interval(correct),
            "majority_label": majority, "majority_accuracy": float(majority_correct.mean()),
            "gain_over_majority_ci95": bootstrap_interval(correct.astype(float) - majority_correct),
            "ece": expected_calibration_error(probabilities.max(1), correct)}


def _read_questions(paths: Sequence[Path]) -> list[PubMedQARecord]:
    """Labelled records of every file, the first of each PMID kept (a PMID in two files is one question)."""
    records: dict[str, PubMedQARecord] = {}
    for path in paths:
        for record in read_pubmedqa(path, require_decision=True):
            records.setdefault(record.pmid, record)
    return list(records.values())


def save_abstention_curve(chosen: dict[str, Any], path: Path) -> Path:
    curve = chosen["curve"]
    figure, axis = pyplot().subplots(figsize=(6, 4))
    axis.plot([row["coverage"] for row in curve], [row["accuracy"] for row in curve], marker=".")
    axis.axhline(chosen["target_accuracy"], color="grey", linestyle="--", label=f"target {chosen['target_accuracy']}")
    if chosen["threshold"] is not None:
        axis.plot([chosen["coverage"]], [chosen["accuracy"]], "o", color="tab:red",
                  label=f"abstain below {chosen['threshold']:.2f}")
    axis.set(xlabel="share of questions decided (coverage)", ylabel="accuracy of the decided ones",
             title="yes/no/maybe: accuracy against coverage (cross-validated)")
    axis.legend()
    return save_figure(figure, path)


def train_decision(assistant: Assistant, questions: Path | Sequence[Path], out: Path, *, tenant: str | None,
                   split: Split = DEFAULT_SPLIT, folds: int = 5, seed: int = 0, conclusions: bool = True,
                   progress: bool = True) -> dict[str, Any]:
    """Choose C (and whether conclusion rows help) by grouped cross-validation on the split's train and
    validation parts, fit on them, score the test part; save model, card and figures to ``out``."""
    started = time.time()
    paths = [Path(questions)] if isinstance(questions, str | Path) else [Path(path) for path in questions]
    records = _read_questions(paths)
    train, validation, test = split.divide(records)
    fitted_on = train + validation
    if len(fitted_on) < folds or not test:
        raise ValueError(f"{', '.join(map(str, paths))}: split {split.name!r} gives {len(fitted_on)} questions to "
                         f"fit on and {len(test)} to test; give at least {folds} questions to fit on and one to test")
    reader = assistant.writer.language_model
    cache = ScoreCache(assistant.config.cache_dir, reader)
    labels = [record.final_decision for record in fitted_on]
    groups = [record.pmid for record in fitted_on]
    scores = question_scores(assistant, fitted_on, cache, tenant=tenant, progress=progress)
    test_scores = question_scores(assistant, test, cache, tenant=tenant, progress=progress)
    extra = None
    if conclusions:
        conclusion_rows, kept = conclusion_scores(fitted_on, cache, progress=progress)
        extra = (conclusion_rows, [labels[i] for i in kept], [groups[i] for i in kept]) if kept else None
    candidates: dict[str, dict[str, Any]] = {}
    for with_conclusions in ([False, True] if extra is not None else [False]):
        for c in C_GRID:
            probabilities = cross_validated(scores, labels, groups, c, extra=extra if with_conclusions else None,
                                            folds=folds, seed=seed)
            metrics = label_metrics(labels, probabilities, LABELS, ["pubmedqa"] * len(labels))
            candidates[f"C={c}{' + conclusions' if with_conclusions else ''}"] = {
                "C": c, "conclusions": with_conclusions, "metrics": metrics, "probabilities": probabilities}
    best_name = min(candidates, key=lambda name: candidates[name]["metrics"]["log_loss"])
    best = candidates[best_name]
    majority = max(LABELS, key=labels.count)
    out_of_fold = best["probabilities"]
    correct = [LABELS[i] == label for i, label in zip(out_of_fold.argmax(1), labels, strict=True)]
    zero_shot = label_metrics(labels, zero_shot_probabilities(scores), LABELS, ["pubmedqa"] * len(labels))
    chosen_abstention = abstention(out_of_fold, labels)
    card = {
        "name": "decision-pubmedqa", "reader": reader.name,
        "trained_on": f"{', '.join(path.name for path in paths)} ({len(fitted_on)} of {len(records)} questions: "
                      f"split {split.name} train + validation)",
        "trained_on_sha256": {path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in paths},
        "split": split.describe(records), "labels": list(LABELS),
        "label_counts": {label: labels.count(label) for label in LABELS},
        "majority_baseline_accuracy": labels.count(majority) / len(labels),
        "zero_shot_reader": {"accuracy": zero_shot["accuracy"], "macro_f1": zero_shot["macro_f1"]},
        "cross_validation": {
            "folds": folds, "grouped_by": "PMID", "seed": seed, "selected": best_name, "selected_by": "log loss",
            "candidates": {name: {key: candidate["metrics"][key] for key in ("accuracy", "macro_f1", "log_loss")}
                           for name, candidate in candidates.items()},
            "metrics": best["metrics"], "accuracy_ci95": bootstrap_interval(correct),
            "ece": expected_calibration_error(out_of_fold.max(1), correct)},
        "conclusion_rows": len(extra[0]) if extra is not None and best["conclusions"] else 0,
        "abstention": {key: value for key, value in chosen_abstention.items() if key != "curve"},
        "note": "the selected candidate was chosen on the same folds, so its cross-validated figures are slightly "
                "optimistic; the test figures are not",
    }
    fit_scores, fit_labels = scores, labels
    if extra is not None and best["conclusions"]:
        fit_scores, fit_labels = np.concatenate([scores, extra[0]]), labels + extra[1]
    model = DecisionModel.fit(fit_scores, fit_labels, card, c=best["C"])
    test_labels = [record.final_decision for record in test]
    test_probabilities = model.probabilities(test_scores)
    model.card["test"] = held_out_figures(test_labels, test_probabilities, majority)
    model.card["test"]["zero_shot_reader_accuracy"] = label_metrics(
        test_labels, zero_shot_probabilities(test_scores), LABELS, ["pubmedqa"] * len(test))["accuracy"]
    model.card["seconds"] = round(time.time() - started, 1)
    model.save(out)
    save_confusion_matrix(best["metrics"], out / "confusion_matrix.png",
                          f"yes/no/maybe, {folds}-fold cross-validated ({best_name})")
    save_confusion_matrix(model.card["test"]["metrics"], out / "test_confusion_matrix.png",
                          f"yes/no/maybe, held-out test part of {split.name}")
    save_reliability_diagram(out_of_fold.max(1), correct, out / "reliability.png",
                             f"yes/no/maybe, cross-validated (ECE {model.card['cross_validation']['ece']:.3f})")
    save_abstention_curve(chosen_abstention, out / "abstention.png")
    (out / "MODEL_CARD.md").write_text(model_card(model.card))
    return model.card


def model_card(card: dict[str, Any]) -> str:
    """MODEL_CARD.md from card.json, so no figure is copied by hand."""
    cross, test, abstain = card["cross_validation"], card["test"], card["abstention"]
    counts = ", ".join(f"{label} {count}" for label, count in card["label_counts"].items())
    candidates = "; ".join(f"{name}: accuracy {m['accuracy']:.3f}, log loss {m['log_loss']:.3f}"
                           for name, m in cross["candidates"].items())
    low, high = cross["accuracy_ci95"]
    test_low, test_high = test["accuracy_ci95"]
    gain_low, gain_high = test["gain_over_majority_ci95"]
    if abstain["threshold"] is None:
        abstaining = (f"No confidence threshold reaches accuracy {abstain['target_accuracy']:.2f} on the decided "
                      "questions, so it never abstains.")
    else:
        abstaining = (f"Below confidence {abstain['threshold']:.2f} it abstains (the answer says the evidence does "
                      f"not settle it): cross-validated, the {abstain['coverage']:.0%} of questions above the "
                      f"threshold are decided with accuracy {abstain['accuracy']:.3f} (target "
                      f"{abstain['target_accuracy']:.2f}; `abstention.png`).")
    return f"""# {card['name']}: yes / no / maybe for PubMedQA-style questions

- **What**: a multinomial logistic regression (scikit-learn, standardised inputs, saved with skops) over the
  reader's log-probabilities of "Yes", "No" and "Maybe" as its first word after the question and every
  sentence of the top-ranked source (one prompt pass, the decision's own instruction), raw and renormalised over
  the three options.
- **Reader**: {card['reader']}. The model is tied to it: with another reader medrag shows the reader's
  zero-shot probabilities, marked as not measured, until `medrag train decision` is rerun.
- **Trained on**: {card['trained_on']}; labels {counts}. Each question was searched through the real pipeline
  (router, Weaviate hybrid search, fusion) against a store holding the abstracts; the test part is held out from
  this model and from the fusion module that chose its evidence. `card.json` -> `split` holds the sha256 of each
  part's PMIDs. Extra training rows: {card['conclusion_rows']} (the authors' conclusions as evidence; only ever
  in training folds).
- **Chosen by** {cross['folds']}-fold cross-validation grouped by PMID, by {cross['selected_by']}: {candidates}.
  Selected: {cross['selected']}.
- **Cross-validated** on the {cross['metrics']['queries']} training questions: accuracy
  **{cross['metrics']['accuracy']:.3f}** (95% bootstrap interval {low:.3f}-{high:.3f}), macro-F1
  {cross['metrics']['macro_f1']:.3f}, expected calibration error {cross['ece']:.3f} (`reliability.png`), against
  {card['majority_baseline_accuracy']:.3f} for always answering the majority class and
  {card['zero_shot_reader']['accuracy']:.3f} for the reader's own zero-shot answer.
- **Held-out test** ({test['metrics']['queries']} questions, scored once): accuracy
  **{test['metrics']['accuracy']:.3f}** ({test_low:.3f}-{test_high:.3f}), macro-F1 {test['metrics']['macro_f1']:.3f},
  ECE {test['ece']:.3f}; always "{test['majority_label']}": {test['majority_accuracy']:.3f} (paired gain
  {gain_low:+.3f} to {gain_high:+.3f}); the reader zero-shot: {test['zero_shot_reader_accuracy']:.3f}.
  `confusion_matrix.png` (cross-validated), `test_confusion_matrix.png`.
- **Abstention**: {abstaining}
- **Anchors** (not comparable settings): BioGPT 78.2% on PubMedQA reasoning-required (fine-tuned, with context);
  GPT-4 + MedRAG 70.6% (no context given); medrag's previous decider (sentence embeddings and cue words) 0.526
  against 0.552 for the majority class.
- **Limits**: "maybe" is rare ({card['label_counts'].get('maybe', 0)} training questions) and rarely predicted;
  the reader is a 1.5B coding model quantised to 4 bits, not a biomedical one; PubMedQA questions come with their
  own abstract in the store, which is not how a clinician's question meets the literature. Treat the decision as
  a reading aid next to the cited sentences.
- **Reproduce**: `medrag train decision` (about {card['seconds'] / 60:.0f} minutes on 2 cores; reader scores are
  cached in `~/.cache/medrag/decision/`).
"""
