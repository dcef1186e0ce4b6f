"""Does the grounding check catch a citation that does not support its claim? ``medrag eval support QUESTIONS.json``.

A labelled set is built from real evidence: sentences of the abstracts in any PubMedQA-format file (the result and
conclusion paragraphs, where claims live), each paired with claims made from it by fixed rules:

- supported: the sentence itself; the sentence without its parentheses (fewer details, still entailed); its first
  clause before "; " or ", but" / ", whereas" (a part of what it says);
- not supported: the sentence negated (a "not" added after its first auxiliary verb, or its "not" / "no" removed);
  reversed (direction words swapped: increased / decreased, higher / lower, ...); a number changed; and a sentence
  of another abstract (unrelated).

Both judges of ``medrag.generate.grounding`` (the reader's yes / no and the cosine rule) score every pair with the
rule they share (a claim's numbers must appear in the sentence); the report gives precision and recall of
"supported", overall and by kind of claim, with bootstrap intervals. The rules are ours (no maintained library makes
contrast sets for entailment), and every variant differs from its sentence, so a judge that passes everything scores
the share of supported pairs as precision, the baseline shown beside it.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from medrag.datasets.pubmedqa import PubMedQARecord, read_pubmedqa
from medrag.generate.evidence import EvidenceSentence
from medrag.generate.grounding import SupportJudge
from medrag.metrics import bootstrap_interval
from medrag.reporting import write_json_and_markdown
from medrag.text.sentences import split_sentences

SUPPORTED = ("verbatim", "without parentheses", "first clause")
UNSUPPORTED = ("negated", "reversed", "number changed", "other abstract")
CLAIM_SECTIONS = {"RESULTS", "CONCLUSIONS", "CONCLUSION", "FINDINGS"}
_AUXILIARY = re.compile(r"\b(is|are|was|were|can|could|may|might|should|will|would|has|have|had|did|does|do)\b(?! not)",
                        re.IGNORECASE)
_NEGATION = re.compile(r"\b(not|no)\s+", re.IGNORECASE)
_OPPOSITES = {"increased": "decreased", "increase": "decrease", "increases": "decreases", "higher": "lower",
              "more": "less", "greater": "smaller", "improved": "worsened", "better": "worse", "longer": "shorter",
              "above": "below", "positive": "negative", "reduced": "increased", "larger": "smaller",
              "superior": "inferior", "before": "after", "risk factor": "protective factor"}
_OPPOSITES |= {value: key for key, value in list(_OPPOSITES.items()) if value not in _OPPOSITES}
_DIRECTION = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _OPPOSITES), key=len, reverse=True)) + r")\b",
                        re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _same_case(word: str, replacement: str) -> str:
    return replacement[:1].upper() + replacement[1:] if word[:1].isupper() else replacement


def negated(sentence: str) -> str | None:
    """The sentence with its negation removed, or with "not" added after its first auxiliary verb."""
    if _NEGATION.search(sentence):
        return _NEGATION.sub("", sentence, count=1)
    match = _AUXILIARY.search(sentence)
    return f"{sentence[:match.end()]} not{sentence[match.end():]}" if match else None


def reversed_direction(sentence: str) -> str | None:
    """Every direction word swapped for its opposite (increased -> decreased, higher -> lower, ...)."""
    if not _DIRECTION.search(sentence):
        return None
    return _DIRECTION.sub(lambda m: _same_case(m.group(0), _OPPOSITES[m.group(0).lower()]), sentence)


def number_changed(sentence: str) -> str | None:
    """The first number replaced by another (doubled plus one, keeping its decimals)."""
    match = _NUMBER.search(sentence)
    if not match:
        return None
    text = match.group(0)
    decimals = len(text.split(".")[1]) if "." in text else 0
    changed = f"{float(text) * 2 + 1:.{decimals}f}"
    return sentence[:match.start()] + changed + sentence[match.end():]


def without_parentheses(sentence: str) -> str | None:
    shorter = re.sub(r"\s*\([^()]*\)", "", sentence)
    return shorter if shorter != sentence and len(shorter.split()) >= 5 else None


def first_clause(sentence: str) -> str | None:
    parts = re.split(r";\s+|,\s+(?:but|whereas|while)\s+", sentence, maxsplit=1)
    if len(parts) < 2 or len(parts[0].split()) < 5:
        return None
    return parts[0].rstrip(",;") + "."


VARIANTS: dict[str, Callable[[str], str | None]] = {
    "without parentheses": without_parentheses, "first clause": first_clause, "negated": negated,
    "reversed": reversed_direction, "number changed": number_changed,
}


def claim_sentences(record: PubMedQARecord) -> list[str]:
    """Sentences of the record's result / conclusion paragraphs (all paragraphs when none is labelled)."""
    sections = [context for context, label in zip(record.contexts, record.labels, strict=False)
                if label.upper() in CLAIM_SECTIONS] or list(record.contexts)
    return [s for context in sections for s in split_sentences(context) if len(s.split()) >= 6]


def labelled_pairs(records: Sequence[PubMedQARecord], count: int, seed: int = 0) -> list[dict[str, Any]]:
    """Up to ``count`` evidence sentences (one per abstract, seeded) with every claim the rules make from them."""
    generator = random.Random(seed)
    shuffled = list(records)
    generator.shuffle(shuffled)
    pairs: list[dict[str, Any]] = []
    used = 0
    for index, record in enumerate(shuffled):
        sentences = claim_sentences(record)
        if not sentences or used >= count:
            continue
        sentence = generator.choice(sentences)
        used += 1
        base = {"pmid": record.pmid, "evidence": sentence}
        pairs.append({**base, "kind": "verbatim", "claim": sentence, "supported": True})
        for kind, make in VARIANTS.items():
            if (claim := make(sentence)) is not None and claim != sentence:
                pairs.append({**base, "kind": kind, "claim": claim, "supported": kind in SUPPORTED})
        other = shuffled[(index + 1) % len(shuffled)]
        if other.pmid != record.pmid and (others := claim_sentences(other)):
            pairs.append({**base, "kind": "other abstract", "claim": generator.choice(others), "supported": False})
    return pairs


def _precision_recall(truth: np.ndarray, predicted: np.ndarray) -> dict[str, Any]:
    true_positive = truth & predicted
    precision = float(true_positive.sum() / predicted.sum()) if predicted.any() else float("nan")
    recall = float(true_positive.sum() / truth.sum()) if truth.any() else float("nan")
    return {"precision": precision, "recall": recall, "passed": int(predicted.sum())}


def evaluate_support(judges: Sequence[SupportJudge], encode: Callable[[Sequence[str]], np.ndarray],
                     questions: Path, *, count: int = 100, seed: int = 0, out_dir: Path | None = None,
                     progress: bool = True) -> dict[str, Any]:
    pairs = labelled_pairs(read_pubmedqa(questions), count, seed)
    evidence_texts = list(dict.fromkeys(pair["evidence"] for pair in pairs))
    vectors = dict(zip(evidence_texts, encode(evidence_texts), strict=True))
    truth = np.array([pair["supported"] for pair in pairs])
    report: dict[str, Any] = {"questions": str(questions), "evidence_sentences": len(evidence_texts),
                              "pairs": len(pairs), "seed": seed,
                              "pairs_by_kind": {kind: sum(p["kind"] == kind for p in pairs)
                                                for kind in SUPPORTED + UNSUPPORTED},
                              "pass_everything_precision": float(truth.mean()), "judges": {}}
    for judge in judges:
        started = time.perf_counter()
        scores = []
        for pair in tqdm(pairs, desc=judge.name, unit="pair", disable=not progress):
            sentence = EvidenceSentence(1, "PubmedArticle", pair["pmid"], 0, pair["evidence"], float("nan"),
                                        vectors[pair["evidence"]])
            scores.append(judge.scores(pair["claim"], [sentence])[0])
        seconds = time.perf_counter() - started
        passed = np.array(scores) >= judge.threshold
        correct_pass = (truth & passed).astype(float)
        by_kind = {kind: float(np.mean([p for p, pair in zip(passed, pairs, strict=True) if pair["kind"] == kind]))
                   for kind in SUPPORTED + UNSUPPORTED if any(pair["kind"] == kind for pair in pairs)}
        report["judges"][judge.name] = {
            "threshold": judge.threshold, **_precision_recall(truth, passed),
            # Interval of precision: resample the passed pairs; of recall: resample the supported pairs.
            "precision_ci95": bootstrap_interval(correct_pass[passed]) if passed.any() else None,
            "recall_ci95": bootstrap_interval(passed[truth].astype(float)) if truth.any() else None,
            "pass_rate_by_kind": by_kind, "ms_per_pair": 1000 * seconds / max(len(pairs), 1),
            "scores": [round(float(score), 4) for score in scores]}
    report["examples"] = pairs[:12]
    if out_dir:
        write_json_and_markdown(report, render_markdown(report), out_dir, "support")
    return report


def render_markdown(report: dict[str, Any]) -> str:
    kinds = [kind for kind in SUPPORTED + UNSUPPORTED if report["pairs_by_kind"].get(kind)]
    lines = [f"# Does the grounding check catch unsupported citations? ({Path(report['questions']).name})", "",
             f"{report['pairs']} claim-evidence pairs from {report['evidence_sentences']} real evidence sentences "
             f"(seed {report['seed']}): " + ", ".join(f"{kind} {report['pairs_by_kind'][kind]}" for kind in kinds)
             + f". Passing everything gives precision {report['pass_everything_precision']:.3f}.", "",
             "| judge | threshold | precision [95% CI] | recall [95% CI] | ms / pair | "
             + " | ".join(f"passes {kind}" for kind in kinds) + " |",
             "|---|---|---|---|---|" + "---|" * len(kinds)]
    for name, judge in report["judges"].items():
        precision = judge["precision_ci95"] or [float("nan")] * 2
        recall = judge["recall_ci95"] or [float("nan")] * 2
        lines.append(f"| {name} | {judge['threshold']} | {judge['precision']:.3f} [{precision[0]:.3f}, "
                     f"{precision[1]:.3f}] | {judge['recall']:.3f} [{recall[0]:.3f}, {recall[1]:.3f}] | "
                     f"{judge['ms_per_pair']:.0f} | " + " | ".join(f"{judge['pass_rate_by_kind'][kind]:.2f}"
                                                                   for kind in kinds) + " |")
    lines += ["", "Supported kinds should pass (1.00), the others should not (0.00). Both judges share the number "
              "rule, so a changed number fails for both."]
    return "\n".join(lines) + "\n"
