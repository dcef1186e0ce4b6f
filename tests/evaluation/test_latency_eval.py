"""The latency suite's percentile summary, on values whose percentiles are known."""

from __future__ import annotations

import numpy as np

from evaluation.latency import percentile_summary


def test_percentiles_match_numpy_and_sit_inside_their_intervals():
    values = np.arange(1, 101, dtype=float)  # p50 50.5, p95 95.05, p99 99.01 (linear interpolation)
    summary = percentile_summary(values)
    assert summary["count"] == 100
    assert summary["p50_ms"]["value"] == 50.5 and summary["p95_ms"]["value"] == 95.05
    assert summary["p99_ms"]["value"] == 99.01
    for q in (50, 95, 99):
        low, high = summary[f"p{q}_ms"]["ci95"]
        assert low <= summary[f"p{q}_ms"]["value"] <= high and low < high


def test_constant_latencies_have_a_point_interval():
    summary = percentile_summary([12.0] * 5)
    assert summary["p95_ms"] == {"value": 12.0, "ci95": [12.0, 12.0]}
