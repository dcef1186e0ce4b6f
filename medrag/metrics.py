"""Metrics shared by training and evaluation: rankings, labels and the joint image-text space.

A leaf: numpy and scikit-learn only, so trainers (which evaluation may import, never the reverse) and the
evaluation suite score with the same code.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix, f1_score, log_loss, roc_auc_score

from medrag.datasets.covid import FINDING_CLASSES

KS = (1, 5, 10)
NDCG_AT = 10


def rank_metrics(relevance: Sequence[bool], total_relevant: int, ks: Sequence[int] = KS,
                 ndcg_at: int = NDCG_AT) -> dict[str, float]:
    """recall@k, hit@k, precision@k, reciprocal rank and binary nDCG of one ranking.

    ``relevance[i]`` says whether the item at rank i+1 is relevant; ``total_relevant`` is how many
    relevant items exist in the collection (recall's denominator and the ideal DCG). Written by hand:
    it is a few lines, and relevance here is a set or a predicate rather than the graded score matrix
    that scikit-learn's ``ndcg_score`` expects.
    """
    metrics: dict[str, float] = {}
    for k in ks:
        found = sum(relevance[:k])
        metrics[f"recall@{k}"] = found / total_relevant if total_relevant else 0.0
        metrics[f"hit@{k}"] = float(found > 0)
        metrics[f"precision@{k}"] = found / k
    first = next((rank for rank, relevant in enumerate(relevance, 1) if relevant), None)
    metrics["mrr"] = 1.0 / first if first else 0.0
    dcg = sum(1.0 / np.log2(rank + 1) for rank, relevant in enumerate(relevance[:ndcg_at], 1) if relevant)
    ideal = sum(1.0 / np.log2(rank + 1) for rank in range(1, min(total_relevant, ndcg_at) + 1))
    metrics[f"ndcg@{ndcg_at}"] = float(dcg / ideal) if ideal else 0.0
    return metrics


def id_metrics(ranked: Sequence[Hashable], relevant: Iterable[Hashable], ks: Sequence[int] = KS) -> dict[str, float]:
    """:func:`rank_metrics` for a ranking of ids against a set of relevant ids (repeated ids count once)."""
    relevant = set(relevant)
    return rank_metrics([item in relevant for item in dict.fromkeys(ranked)], len(relevant), ks)


def mean_metrics(per_query: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Mean of each metric over queries, with the number of queries."""
    names = per_query[0].keys() if per_query else ()
    return {"queries": len(per_query), **{name: float(np.mean([item[name] for item in per_query])) for name in names}}


def bootstrap_interval(values: Sequence[float], *, level: float = 0.95, resamples: int = 2000,
                       seed: int = 0) -> list[float]:
    """[low, high] percentile-bootstrap interval of the mean of per-query values (seeded, so reports repeat).

    For held-out sets of a few dozen to a few hundred queries, where a difference of a few points can be noise;
    pass per-query differences of two methods for a paired interval of the gain.
    """
    array = np.asarray(values, dtype=float)
    if not len(array):
        return [float("nan"), float("nan")]
    means = np.random.default_rng(seed).choice(array, (resamples, len(array))).mean(axis=1)
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))]


def ratio_bootstrap_interval(numerators: Sequence[float], denominators: Sequence[float], *, level: float = 0.95,
                             resamples: int = 2000, seed: int = 0) -> list[float]:
    """[low, high] percentile-bootstrap interval of a pooled ratio sum(numerators) / sum(denominators), resampling
    the units (e.g. answers) that each contribute a numerator and a denominator (e.g. supported citations and
    citations): the counts inside one answer are not independent, so the answers are what is resampled.

    Written here because scipy's bootstrap takes a statistic of resampled values, not a ratio of two paired sums;
    resamples whose denominator is 0 are left out."""
    top, bottom = np.asarray(numerators, dtype=float), np.asarray(denominators, dtype=float)
    if len(top) != len(bottom):
        raise ValueError(f"{len(top)} numerators but {len(bottom)} denominators; pass one of each per unit")
    if not len(top) or not bottom.sum():
        return [float("nan"), float("nan")]
    draws = np.random.default_rng(seed).integers(0, len(top), (resamples, len(top)))
    sums = bottom[draws].sum(axis=1)
    ratios = top[draws].sum(axis=1)[sums > 0] / sums[sums > 0]
    tail = (1 - level) / 2 * 100
    return [float(np.percentile(ratios, tail)), float(np.percentile(ratios, 100 - tail))]


def peak_ratio(grid: np.ndarray) -> float:
    """How many times a uniform cell's weight the hottest cell of an attention map gets (1 for a flat map): how
    far the map is from looking everywhere at once, whatever it looks at."""
    grid = np.asarray(grid, dtype=np.float64)
    return float(grid.max() * grid.size / grid.sum())


def grouped_auc_interval(labels: Sequence[int], scores: Mapping[str, Sequence[float]], groups: Sequence[str], *,
                         level: float = 0.95, resamples: int = 2000, seed: int = 0) -> dict[str, Any]:
    """ROC AUC of each named score with a percentile-bootstrap interval that resamples patient groups (images of
    one patient are not independent), and the paired interval of each score's AUC minus the first's.

    Resamples holding one class only are skipped (their count is returned as ``skipped``).
    """
    truth = np.asarray(labels, dtype=int)
    names = list(scores)
    values = {name: np.asarray(scores[name], dtype=float) for name in names}
    keys = sorted(set(groups))
    members = {key: np.flatnonzero(np.asarray(groups) == key) for key in keys}
    rng = np.random.default_rng(seed)
    drawn: dict[str, list[float]] = {name: [] for name in names}
    skipped = 0
    for _ in range(resamples):
        rows = np.concatenate([members[keys[i]] for i in rng.integers(0, len(keys), len(keys))])
        if truth[rows].min() == truth[rows].max():
            skipped += 1
            continue
        for name in names:
            drawn[name].append(roc_auc_score(truth[rows], values[name][rows]))
    tail = (1 - level) / 2 * 100

    def interval(samples: Sequence[float]) -> list[float]:
        return [float(np.percentile(samples, tail)), float(np.percentile(samples, 100 - tail))]

    first = np.asarray(drawn[names[0]])
    return {"auc": {name: float(roc_auc_score(truth, values[name])) for name in names},
            "auc_ci95": {name: interval(drawn[name]) for name in names},
            f"minus_{names[0]}_ci95": {name: interval(np.asarray(drawn[name]) - first) for name in names[1:]},
            "images": len(truth), "groups": len(keys), "positives": int(truth.sum()),
            "negatives": int(len(truth) - truth.sum()), "skipped": skipped}


def label_metrics(true: Sequence[str], probabilities: np.ndarray, intents: Sequence[str],
                   origins: Sequence[str]) -> dict[str, Any]:
    """Classification metrics for any labels (intents, yes/no/maybe): accuracy (overall and per data origin),
    balanced accuracy, macro-F1, log loss, confusion matrix."""
    predicted = [intents[index] for index in probabilities.argmax(axis=1)]
    order = np.argsort(list(intents))  # log_loss reads the columns in sorted label order
    matrix = confusion_matrix(true, predicted, labels=list(intents))
    by_origin: dict[str, list[bool]] = {}
    for origin, truth, guess in zip(origins, true, predicted, strict=True):
        by_origin.setdefault(origin, []).append(truth == guess)
    return {
        "queries": len(true),
        "accuracy": float(accuracy_score(true, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(true, predicted)),
        "macro_f1": float(f1_score(true, predicted, labels=list(intents), average="macro", zero_division=0)),
        "log_loss": float(log_loss(true, probabilities[:, order] / probabilities.sum(1, keepdims=True),
                                   labels=sorted(intents))),
        "intents": list(intents),
        "confusion_matrix": matrix.tolist(),
        "accuracy_by_origin": {origin: float(np.mean(hits)) for origin, hits in sorted(by_origin.items())},
    }


PROMPTS = {
    "COVID-19": ["chest x-ray of COVID-19 pneumonia", "bilateral peripheral ground-glass opacities, COVID-19"],
    "other pneumonia": ["chest x-ray of bacterial pneumonia", "lobar consolidation from pneumonia",
                        "pneumocystis pneumonia with interstitial opacities"],
    "no finding": ["normal chest x-ray", "no acute cardiopulmonary abnormality, clear lungs"],
}


def _ranking_metrics(similarity: np.ndarray, relevant: np.ndarray, ks: tuple[int, ...]) -> dict[str, float]:
    """Hit rate at k and MRR of the first relevant candidate.

    Written here because candidates can be equally right (several cases share the text "Finding:
    COVID-19."), and scikit-learn's top-k accuracy knows one right answer per query. Ties with a
    wrong candidate count against the query (pessimistic), so duplicates cannot inflate the score.
    """
    best_relevant = np.where(relevant, similarity, -np.inf).max(axis=1)
    first_rank = (np.where(relevant, -np.inf, similarity) >= best_relevant[:, None]).sum(axis=1) + 1
    metrics = {f"recall@{k}": float(np.mean(first_rank <= k)) for k in ks}
    metrics["mrr"] = float(np.mean(1.0 / first_rank))
    return metrics


def retrieval_metrics(images: np.ndarray, texts: np.ndarray, captions: list[str],
                      ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, dict]:
    """image->text and text->image recall@k and MRR; pair i is relevant, and so is any pair with the same text."""
    similarity = images @ texts.T
    relevant = np.array([[a == b for b in captions] for a in captions])
    return {"image_to_text": _ranking_metrics(similarity, relevant, ks),
            "text_to_image": _ranking_metrics(similarity.T, relevant, ks)}


def zero_shot_auc(images: np.ndarray, labels: list[str],
                  encode_texts: Callable[[list[str]], np.ndarray]) -> dict[str, float]:
    """One-vs-rest AUC per finding class from text prompts (mean prompt embedding per class), and the macro mean."""
    class_vectors = []
    for name in FINDING_CLASSES:
        vectors = encode_texts(PROMPTS[name])
        mean = vectors.mean(axis=0)
        class_vectors.append(mean / np.linalg.norm(mean))
    scores = images @ np.stack(class_vectors).T
    result = {}
    for index, name in enumerate(FINDING_CLASSES):
        truth = np.array([label == name for label in labels])
        if 0 < truth.sum() < len(truth):
            result[name] = float(roc_auc_score(truth, scores[:, index]))
    result["macro"] = float(np.mean(list(result.values()))) if result else float("nan")
    return result


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """ECE: over equal-width confidence bins, the gap between accuracy and mean confidence, weighted by the share
    of predictions in the bin (Guo et al. 2017). Written by hand: scikit-learn has the reliability curve
    (``calibration_curve``) but not this summary of it."""
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    return float(sum(abs(correct[which == b].mean() - confidence[which == b].mean()) * np.mean(which == b)
                     for b in range(bins) if np.any(which == b)))


def selective_accuracy(confidence: Sequence[float], correct: Sequence[bool],
                       thresholds: Sequence[float]) -> list[dict[str, float]]:
    """For each threshold: the share of predictions at or above it (coverage) and their accuracy (NaN when none
    is left), the curve behind an abstention threshold."""
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=bool)
    rows = []
    for threshold in thresholds:
        kept = confidence >= threshold
        rows.append({"threshold": float(threshold), "coverage": float(kept.mean()),
                     "accuracy": float(correct[kept].mean()) if kept.any() else float("nan")})
    return rows
