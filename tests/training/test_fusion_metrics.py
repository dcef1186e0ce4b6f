"""The fusion metrics on hand-built queries whose answers can be worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from training.fusion_data import Candidate, FusionItem
from training.fusion_metrics import evaluate, finding_probabilities, rerank_metrics, sentence_hit


def _item(relevant: list[bool], labels: list[str | None] | None = None, label: str | None = None,
          sentences: dict[int, list[int]] | None = None, task: str = "covid") -> FusionItem:
    labels = labels or [None] * len(relevant)
    candidates = [Candidate("ImagingCase", str(i), hit, (sentences or {}).get(i, []), labels[i])
                  for i, hit in enumerate(relevant)]
    return FusionItem(task, "q", "g", None, None, candidates, label)


def test_rerank_metrics_follow_the_scores():
    item = _item([False, False, True, False, False, False])
    assert rerank_metrics(item, -np.arange(6.0)) == {"hit@1": 0.0, "hit@5": 1.0, "precision@5": 0.2,
                                                     "mrr": pytest.approx(1 / 3)}
    promoted = np.array([0.0, 0.0, 5.0, 0.0, 0.0, 0.0])
    assert rerank_metrics(item, promoted)["mrr"] == 1.0


def test_finding_votes_weight_by_rank_and_skip_unlabelled_candidates():
    item = _item([True, False, False], ["COVID-19", None, "no finding"], "COVID-19")
    probabilities = finding_probabilities(item, np.array([3.0, 2.0, 1.0]))
    # COVID-19 at case rank 1 (weight 1), no finding at case rank 2 (weight 1/2); the report is not a vote.
    assert probabilities[0] == pytest.approx(2 / 3, abs=1e-5) and probabilities[2] == pytest.approx(1 / 3, abs=1e-5)
    flipped = finding_probabilities(item, np.array([1.0, 2.0, 3.0]))
    assert flipped.argmax() == 2


def test_sentence_hit_looks_at_the_best_three_sentences_overall():
    item = _item([True, False], sentences={0: [2]}, task="pubmedqa")
    assert sentence_hit(item, [np.array([0.9, 0.8, 0.1]), np.array([0.7, 0.6])]) == 0.0
    assert sentence_hit(item, [np.array([0.9, 0.8, 0.75]), np.array([0.7, 0.6])]) == 1.0
    assert sentence_hit(_item([False, False]), [np.zeros(1), np.zeros(1)]) is None


def test_evaluate_reports_per_task_with_auc_when_every_class_is_present():
    classes = ["COVID-19", "other pneumonia", "no finding"]
    items = [_item([True, False, False], [c, classes[(i + 1) % 3], classes[(i + 2) % 3]], c)
             for i, c in enumerate(classes)]
    perfect = [(np.array([3.0, 2.0, 1.0]), [np.zeros(1)] * 3) for _ in items]
    report = evaluate(items, perfect)["covid"]
    assert report["queries"] == 3 and report["mrr"] == 1.0
    assert report["finding_accuracy"] == 1.0 and report["finding_auc"] == 1.0
    worst = [(np.array([1.0, 2.0, 3.0]), [np.zeros(1)] * 3) for _ in items]
    assert evaluate(items, worst)["covid"]["finding_accuracy"] == 0.0
