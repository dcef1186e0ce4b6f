"""Held-out scoring of the fusion reranker and its baselines, shared by ``medrag train fusion`` (the model
card's test figures) and ``medrag eval ablate``.

Metrics, per task:
- rerank: hit@1 and hit@5 (the own abstract, or any candidate of the query's finding class, in the top
  1/5), MRR of the first relevant candidate, and for covid precision@5;
- sentence selection (PubMedQA): whether one of the 3 best-scored sentences is one that carries the
  authors' conclusion; without fusion the sentences are scored by cosine with the question;
- covid finding classification: class probabilities from the finding classes of the 10 best-ranked case
  candidates, weighted by 1/rank; accuracy and one-vs-rest macro AUC (scikit-learn).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

from medrag.datasets.covid import FINDING_CLASSES
from medrag.metrics import rank_metrics
from medrag.store import CASES
from training.fusion_data import Candidate, FusionData, FusionItem

SENTENCES_KEPT = 3
CASES_VOTING = 10
NO_FUSION = "no fusion (retrieval order)"
CASES_FIRST = "cases first (retrieval order within)"
"""A second baseline: the same candidates with every imaging case moved ahead of the reports. On covid
queries most cases share the majority finding, so this modality prior alone lifts precision."""
Prediction = tuple[np.ndarray, list[np.ndarray]]
"""Candidate scores (C,) and each candidate's sentence scores, as ``training.fusion.predict`` gives them."""


def retrieval_prediction(data: FusionData, item: FusionItem) -> Prediction:
    """The no-fusion baseline: retrieval order, sentences by cosine with the query's first text token."""
    scores = -np.arange(len(item.candidates), dtype=np.float32)
    query = item.text[0] if item.text is not None else None
    sentences = [data.sentence_vectors[(c.collection, c.source_id)].astype(np.float32) @ query if query is not None
                 else np.zeros(len(data.sentence_vectors[(c.collection, c.source_id)]), np.float32)
                 for c in item.candidates]
    return scores, sentences


def cases_first_prediction(data: FusionData, item: FusionItem) -> Prediction:
    """The retrieval baseline with imaging cases ahead of everything else (see ``CASES_FIRST``)."""
    scores, sentences = retrieval_prediction(data, item)
    return scores + 1000.0 * np.array([c.collection == CASES for c in item.candidates], np.float32), sentences


BASELINES = {NO_FUSION: retrieval_prediction, CASES_FIRST: cases_first_prediction}
TABLE_METRICS = ("hit@1", "hit@5", "precision@5", "mrr", f"sentence_hit@{SENTENCES_KEPT}", "finding_accuracy",
                 "finding_auc")
"""The columns of the Markdown table; the JSON also has MRR per finding class."""


def ranked(item: FusionItem, scores: np.ndarray) -> list[Candidate]:
    """The item's candidates by descending score; ties keep the retrieval order."""
    return [item.candidates[index] for index in np.argsort(-scores, kind="stable")]


def rerank_metrics(item: FusionItem, scores: np.ndarray) -> dict[str, float]:
    relevant = [candidate.relevant for candidate in ranked(item, scores)]
    metrics = rank_metrics(relevant, sum(relevant), ks=(1, 5))
    return {name: metrics[name] for name in ("hit@1", "hit@5", "precision@5", "mrr")}


def sentence_hit(item: FusionItem, sentence_scores: Sequence[np.ndarray]) -> float | None:
    """1 if one of the best ``SENTENCES_KEPT`` sentences (over all candidates) is relevant; None if unlabelled."""
    labelled = {(c, s) for c, candidate in enumerate(item.candidates) for s in candidate.relevant_sentences}
    if not labelled:
        return None
    flat = [(score, c, s) for c, scores in enumerate(sentence_scores) for s, score in enumerate(scores)]
    best = sorted(flat, key=lambda entry: -entry[0])[:SENTENCES_KEPT]
    return float(any((c, s) in labelled for _, c, s in best))


def finding_probabilities(item: FusionItem, scores: np.ndarray) -> np.ndarray:
    """Probabilities over ``FINDING_CLASSES`` from the best-ranked labelled cases, each weighted by 1/rank."""
    votes = np.full(len(FINDING_CLASSES), 1e-6)
    cases = [candidate for candidate in ranked(item, scores) if candidate.label in FINDING_CLASSES][:CASES_VOTING]
    for rank, candidate in enumerate(cases, 1):
        votes[FINDING_CLASSES.index(candidate.label)] += 1.0 / rank
    return votes / votes.sum()


def _mean(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]} if rows else {}


def evaluate(items: Sequence[FusionItem], predictions: Sequence[Prediction]) -> dict[str, dict[str, float]]:
    """Mean metrics per task on ``items`` (see the module docstring)."""
    report: dict[str, dict[str, float]] = {}
    for task in sorted({item.task for item in items}):
        chosen = [(item, prediction) for item, prediction in zip(items, predictions, strict=True)
                  if item.task == task]
        metrics = _mean([rerank_metrics(item, scores) for item, (scores, _) in chosen])
        hits = [hit for item, (_, sentences) in chosen if (hit := sentence_hit(item, sentences)) is not None]
        if hits and task == "pubmedqa":
            metrics[f"sentence_hit@{SENTENCES_KEPT}"] = float(np.mean(hits))
        labelled = [(item, scores) for item, (scores, _) in chosen if item.label in FINDING_CLASSES]
        for name in FINDING_CLASSES:
            of_class = [rerank_metrics(item, scores)["mrr"] for item, scores in labelled if item.label == name]
            if of_class:
                metrics[f"mrr[{name}]"] = float(np.mean(of_class))
        if labelled:
            truth = np.array([FINDING_CLASSES.index(item.label) for item, _ in labelled])
            probabilities = np.stack([finding_probabilities(item, scores) for item, scores in labelled])
            metrics["finding_accuracy"] = float(np.mean(probabilities.argmax(1) == truth))
            if len(set(truth)) == len(FINDING_CLASSES):
                metrics["finding_auc"] = float(roc_auc_score(truth, probabilities, multi_class="ovr",
                                                             labels=list(range(len(FINDING_CLASSES)))))
        report[task] = {"queries": float(len(chosen)), **metrics}
    return report
