"""Answer quality on a PubMedQA-format file: ``medrag eval answers QUESTIONS.json``.

For every question the real pipeline searches the store, then both answer modes run:
- the yes/no/maybe decision: the trained decider over the reader's scores vs the reader's own zero-shot
  probabilities, with the majority class alongside; again on the questions in the test part
  of the split named in the decision model's card, which that model never trained on, whatever the file;
- "insufficient evidence": how often each question is declared unanswerable as is, and again with its own
  abstract removed from the evidence (then it should be), at the configured threshold and over a sweep of
  thresholds (``insufficient_evidence.png``);
- on the first ``generate`` questions, full generative answers: citation precision and the share of
  sentences supported, as the model wrote them (before the grounding check drops anything), judged by the
  configured check (the reader's entailment) and again by the former cosine rule on the same text; tokens/s
  and end-to-end seconds. Extractive sentences are quoted evidence, supported by construction.

``held_out_only`` keeps the questions in the test part of the split every medrag model shares (``medrag-v1``,
or the one the decision model's card names): items that neither the fusion module nor the decider trained on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import f1_score
from tqdm import tqdm

from medrag.assistant import STAGES, Assistant
from medrag.datasets.pubmedqa import read_pubmedqa
from medrag.datasets.splits import DEFAULT_SPLIT, card_split
from medrag.generate.decision import LABELS, Decision, decision_from
from medrag.generate.grounding import CosineSupport, check
from medrag.lm.base import renormalised
from medrag.metrics import bootstrap_interval, label_metrics, ratio_bootstrap_interval
from medrag.reporting import (
    pyplot,
    save_confusion_matrix,
    save_figure,
    save_reliability_diagram,
    write_json_and_markdown,
)
from training.decision import BATCH

SWEEP = np.round(np.arange(0.30, 0.71, 0.05), 2)


def _decision_metrics(labels: list[str], decisions: list[Decision | None]) -> dict[str, Any]:
    """Accuracy, macro-F1 and the confusion matrix over all questions; no decision (insufficient evidence)
    counts as "maybe": the answer could not tell."""
    undecided = [float(label == "maybe") for label in LABELS]
    probabilities = np.array([[d.probabilities[label] for label in LABELS] if d else undecided for d in decisions])
    metrics = label_metrics(labels, probabilities, LABELS, ["pubmedqa"] * len(labels))
    metrics["decided"] = sum(d is not None for d in decisions)
    correct = [float(LABELS[int(row.argmax())] == label) for row, label in zip(probabilities, labels, strict=True)]
    metrics["accuracy_ci95"] = bootstrap_interval(correct)
    # MIRAGE (Xiong et al. 2024) reports PubMedQA accuracy with the binomial standard error; given beside the
    # bootstrap interval so a figure compares with its leaderboard directly.
    metrics["accuracy_binomial_se"] = float(np.sqrt(metrics["accuracy"] * (1 - metrics["accuracy"]) / len(labels)))
    decided = [d is not None for d in decisions]
    metrics["confidence"] = [float(row.max()) for row, kept in zip(probabilities, decided, strict=True) if kept]
    metrics["decided_correct"] = [c for c, kept in zip(correct, decided, strict=True) if kept]
    return metrics


def _majority_baseline(labels: list[str], majority: str) -> dict[str, Any]:
    return {"label": majority, "accuracy": labels.count(majority) / len(labels),
            "macro_f1": float(f1_score(labels, [majority] * len(labels), labels=list(LABELS), average="macro",
                                       zero_division=0))}


def _held_out(card: dict[str, Any], groups: list[str]) -> tuple[str | None, list[int]]:
    """The split named in the decision model's card and the indices of the questions in its test part."""
    if not card:
        return None, []
    split = card_split(card, f"decision model {card.get('name', '?')} (card.json)")
    return split.name, [index for index, group in enumerate(groups) if split.part(group) == "test"]


def evaluate_answers(assistant: Assistant, questions_path: Path, *, tenant: str, generate: int = 50,
                     held_out_only: bool = False, out_dir: Path | None = None, progress: bool = True
                     ) -> dict[str, Any]:
    writer = assistant.writer
    card = writer.decision_model.card if writer.decision_model else {}
    rows = read_pubmedqa(questions_path, require_decision=True)
    if held_out_only:
        split = card_split(card, "decision model card") if card.get("split") else DEFAULT_SPLIT
        rows = [record for record in rows if split.part(record.group) == "test"]
        if not rows:
            raise ValueError(f"{questions_path}: no question falls in the test part of split {split.name!r}; "
                             "run without --held-out")
    labels = [record.final_decision for record in rows]
    extractive: list[Decision | None] = []
    zero_shot: list[Decision | None] = []
    best_relevance: dict[str, list[float]] = {"as_is": [], "own_abstract_removed": []}
    written = {"citations": 0, "supported_citations": 0, "sentences": 0, "supported_sentences": 0}
    written_cosine = dict.fromkeys(written, 0)
    per_answer: list[dict[str, int]] = []  # the counts of each generated answer, for the intervals
    cosine = CosineSupport(writer.encode, assistant.config.answer.min_support)
    kept_sentences = dropped_sentences = tokens = 0
    generate_seconds: list[float] = []
    answer_seconds: list[float] = []
    for start in tqdm(range(0, len(rows), BATCH), desc="questions", unit="batch", disable=not progress):
        chunk = rows[start:start + BATCH]
        results = assistant.search_batch([{"question": record.question} for record in chunk], tenant=tenant)
        for record, result in zip(chunk, results, strict=True):
            answer = writer(result, "extractive")
            extractive.append(answer.decision)
            evidence, relevant = writer.evidence(result)
            best_relevance["as_is"].append(max((s.relevance for s in evidence), default=-1.0))
            # The reader's own probabilities from the same pass the decider read.
            zero_shot.append(decision_from(renormalised(np.array(answer.decision.reader_scores)), "zero-shot reader",
                                           "") if answer.decision else None)
            without = dataclasses.replace(result, fusion=None,
                                          evidence=[e for e in result.evidence if e.source_id != record.pmid])
            best_relevance["own_abstract_removed"].append(
                max((s.relevance for s in writer.evidence(without)[0]), default=-1.0))
            if len(answer_seconds) < generate:
                started = time.perf_counter()
                generated = writer(result, "generative")
                searched = sum(generated.timings_ms[stage] for stage in STAGES) / 1000
                answer_seconds.append(time.perf_counter() - started + searched)
                as_cosine = check(generated.written, relevant, cosine) if generated.written else None
                per_answer.append({name: generated.grounding.get(name, 0) for name in written})
                for name in written:
                    written[name] += generated.grounding.get(name, 0)
                    written_cosine[name] += as_cosine.counts()[name] if as_cosine else 0
                kept_sentences += len(generated.claims)
                dropped_sentences += len(generated.dropped)
                if generated.tokens:
                    tokens += generated.tokens
                    generate_seconds.append(generated.timings_ms["generate"] / 1000)
    majority = max(LABELS, key=labels.count)
    trained_on = card.get("trained_on_sha256") or {}  # {file name: sha256} of every file it trained on
    in_sample = hashlib.sha256(questions_path.read_bytes()).hexdigest() in trained_on.values()
    split_name, held_out = _held_out(card, [record.group for record in rows])
    held_out_labels = [labels[index] for index in held_out]
    report = {
        "questions": str(questions_path), "count": len(rows), "tenant": tenant, "held_out_only": held_out_only,
        "majority_baseline": _majority_baseline(labels, majority),
        "extractive_decision": _decision_metrics(labels, extractive),
        "zero_shot_reader_decision": _decision_metrics(labels, zero_shot),
        "decision_model": card.get("name"), "decision_model_in_sample": in_sample,
        "decision_model_cross_validated": card.get("cross_validation", {}).get("metrics") if in_sample else None,
        "decision_model_split": split_name,
        "held_out": {"questions": len(held_out), "majority_baseline": _majority_baseline(held_out_labels, majority),
                     "extractive_decision": _decision_metrics(held_out_labels, [extractive[i] for i in held_out])}
        if held_out else None,
        "min_relevance": assistant.config.min_relevance,
        "insufficient_evidence_rate": {name: float(np.mean(np.array(values) < assistant.config.min_relevance))
                                       for name, values in best_relevance.items()},
        "insufficient_evidence_sweep": {f"{threshold:.2f}": {name: float(np.mean(np.array(values) < threshold))
                                                            for name, values in best_relevance.items()}
                                        for threshold in SWEEP},
        "generative": {
            "answers": len(answer_seconds), "language_model": writer.language_model.name,
            "citation_precision": written["supported_citations"] / max(written["citations"], 1),
            "supported_sentence_share": written["supported_sentences"] / max(written["sentences"], 1),
            "ci95": {"citation_precision": ratio_bootstrap_interval([a["supported_citations"] for a in per_answer],
                                                                    [a["citations"] for a in per_answer]),
                     "supported_sentence_share": ratio_bootstrap_interval(
                         [a["supported_sentences"] for a in per_answer], [a["sentences"] for a in per_answer]),
                     "unit": "answer (percentile bootstrap of the pooled ratio)"},
            "support_check": assistant.config.answer.support_check,
            "cosine_rule": {"citation_precision": written_cosine["supported_citations"] /
                            max(written_cosine["citations"], 1),
                            "supported_sentence_share": written_cosine["supported_sentences"] /
                            max(written_cosine["sentences"], 1), "written": written_cosine},
            "written": written, "kept_sentences": kept_sentences, "dropped_sentences": dropped_sentences,
            "tokens_per_second": tokens / max(sum(generate_seconds), 1e-9),
            "seconds_p50": float(np.percentile(answer_seconds, 50)) if answer_seconds else None,
            "seconds_p95": float(np.percentile(answer_seconds, 95)) if answer_seconds else None,
        },
    }
    if out_dir:
        write_json_and_markdown(report, render_markdown(report), out_dir, "answers")
        plot_insufficient_sweep(report, out_dir / "insufficient_evidence.png")
        for name in ("extractive", "zero_shot_reader"):
            save_confusion_matrix(report[f"{name}_decision"], out_dir / f"{name}_confusion.png",
                                  f"yes/no/maybe, {name.replace('_', ' ')} ({questions_path.name})")
        decided = report["extractive_decision"]
        if decided["confidence"]:
            save_reliability_diagram(decided["confidence"], decided["decided_correct"],
                                     out_dir / "extractive_reliability.png",
                                     f"yes/no/maybe confidence, {decided['decided']} decided questions")
    return report


def plot_insufficient_sweep(report: dict[str, Any], path: Path) -> Path:
    """Share of questions declared "insufficient evidence" against the relevance threshold, with and without
    the question's own abstract: the gap is what the threshold buys."""
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    sweep = report["insufficient_evidence_sweep"]
    thresholds = [float(threshold) for threshold in sweep]
    for name, label in (("as_is", "own abstract in the store (should answer)"),
                        ("own_abstract_removed", "own abstract removed (should refuse)")):
        axis.plot(thresholds, [sweep[threshold][name] for threshold in sweep], marker="o", label=label)
    axis.axvline(report["min_relevance"], color="grey", linestyle="--", label="configured min_relevance")
    axis.set_xlabel("min_relevance (question-sentence cosine)")
    axis.set_ylabel('share answered "insufficient evidence"')
    axis.legend(fontsize=8)
    return save_figure(figure, path)


def _accuracy(metrics: dict[str, Any]) -> str:
    se = metrics.get("accuracy_binomial_se")  # absent from reports written before it was added
    return f"{metrics['accuracy']:.3f}" + (f" ± {se:.3f}" if se is not None else "")


def render_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Answers on {Path(report['questions']).name} ({report['count']} questions, tenant {report['tenant']})",
             "", "MIRAGE setting: each question alone searches everything in the tenant (no abstract given), then "
             "the decision reads what came back; accuracy ± binomial standard error.", "",
             "| decider | accuracy | macro-F1 | decided |", "|---|---|---|---|"]
    base = report["majority_baseline"]
    lines.append(f"| majority class ({base['label']}) | {base['accuracy']:.3f} | {base['macro_f1']:.3f} | all |")
    for name in ("extractive", "zero_shot_reader"):
        m = report[f"{name}_decision"]
        lines.append(f"| {name.replace('_', ' ')} | {_accuracy(m)} | {m['macro_f1']:.3f} | {m['decided']} |")
    held_out = report.get("held_out")  # absent from reports written before named splits
    if held_out:
        base, m = held_out["majority_baseline"], held_out["extractive_decision"]
        lines += [f"| majority class ({base['label']}), held-out questions | {base['accuracy']:.3f} | "
                  f"{base['macro_f1']:.3f} | all |",
                  f"| extractive, held-out questions | {_accuracy(m)} | {m['macro_f1']:.3f} | {m['decided']} |",
                  "", f"Held-out: the {held_out['questions']} questions in the test part of split "
                  f"{report['decision_model_split']} (the decision model's card), which it never trained on."]
    if report["decision_model_in_sample"]:
        cv = report["decision_model_cross_validated"]
        lines += ["", f"The decision model was trained on this file (its train and validation parts): its "
                  f"cross-validated figures there are accuracy {cv['accuracy']:.3f}, macro-F1 {cv['macro_f1']:.3f}; "
                  "the extractive row over all questions is partly in-sample."]
    rate = report["insufficient_evidence_rate"]
    gen = report["generative"]
    lines += ["", f"Insufficient evidence declared (min_relevance {report['min_relevance']}): {rate['as_is']:.3f} of "
              f"questions as is, {rate['own_abstract_removed']:.3f} with the question's own abstract removed.", "",
              f"Generative answers ({gen['answers']}, {gen['language_model']}): citation precision "
              f"{gen['citation_precision']:.3f} {_bracket(gen, 'citation_precision')}, supported sentences "
              f"{gen['supported_sentence_share']:.3f} {_bracket(gen, 'supported_sentence_share')} as written "
              f"(judged by the {gen.get('support_check', 'configured')} check"
              + (f"; by the former cosine rule: {gen['cosine_rule']['citation_precision']:.3f} and "
                 f"{gen['cosine_rule']['supported_sentence_share']:.3f}" if "cosine_rule" in gen else "") + "); "
              f"{gen['kept_sentences']} sentences kept, {gen['dropped_sentences']} dropped by the grounding check; "
              f"{gen['tokens_per_second']:.1f} tokens/s; end-to-end p50 {gen['seconds_p50'] or 0:.1f} s, "
              f"p95 {gen['seconds_p95'] or 0:.1f} s."]
    return "\n".join(lines)


def _bracket(generated: dict[str, Any], name: str) -> str:
    """A generated-answer figure's 95% interval over answers, as "[low, high]" (empty in reports from before)."""
    low, high = generated.get("ci95", {}).get(name, [float("nan")] * 2)
    return "" if low != low else f"[{low:.3f}, {high:.3f}]"
