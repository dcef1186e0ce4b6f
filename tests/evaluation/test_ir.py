"""The paired comparison of retrieval methods (ranx) against medrag's own ranking metrics."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.ir import compare_rankings, significance_lines
from medrag.metrics import id_metrics, mean_metrics


def _random_rankings(seed: int, queries: int = 40) -> tuple[dict[str, list[str]], dict[str, set[str]]]:
    rng = np.random.default_rng(seed)
    documents = [f"d{i}" for i in range(30)]
    rankings = {f"q{q}": list(rng.choice(documents, 10, replace=False)) for q in range(queries)}
    relevant = {f"q{q}": set(rng.choice(documents, int(rng.integers(1, 4)), replace=False)) for q in range(queries)}
    return rankings, relevant


@pytest.mark.unit
def test_means_agree_with_medrags_hand_written_metrics():
    rankings, relevant = _random_rankings(seed=3)
    comparison = compare_rankings({"random": rankings}, relevant)
    ours = mean_metrics([id_metrics(rankings[q], relevant[q]) for q in relevant])
    for metric in comparison["metrics"]:
        assert comparison["methods"]["random"][metric]["mean"] == pytest.approx(ours[metric]), metric
        low, high = comparison["methods"]["random"][metric]["interval"]
        assert low <= ours[metric] <= high


@pytest.mark.unit
def test_the_paired_test_separates_a_better_method_and_not_a_copy():
    rankings, relevant = _random_rankings(seed=5, queries=60)
    perfect = {q: [*sorted(relevant[q]), *[d for d in rankings[q] if d not in relevant[q]]] for q in relevant}
    comparison = compare_rankings({"random": rankings, "copy": dict(rankings), "perfect": perfect}, relevant,
                                  permutations=500)
    p_values = comparison["p_values"]
    assert p_values["random"]["perfect"]["mrr"] < 0.01
    assert p_values["random"]["copy"]["mrr"] == 1.0
    assert comparison["methods"]["perfect"]["mrr"]["mean"] == 1.0


@pytest.mark.unit
def test_a_query_a_method_missed_scores_zero_and_tuples_are_items():
    relevant = {"q1": {("Articles", "1")}, "q2": {("Articles", "2")}}
    comparison = compare_rankings({"one": {"q1": [("Articles", "1")]}}, relevant, permutations=10)
    assert comparison["queries"] == 2
    assert comparison["methods"]["one"]["recall@1"]["mean"] == 0.5
    table = significance_lines(comparison)
    assert table[0].startswith("| method | mrr [95% CI]") and "0.500" in table[2]
