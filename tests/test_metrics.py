"""Shared metrics: the patient-grouped bootstrap of AUCs, the answer-level bootstrap of pooled ratios, calibration
and selective accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from medrag.metrics import (
    expected_calibration_error,
    grouped_auc_interval,
    peak_ratio,
    ratio_bootstrap_interval,
    selective_accuracy,
)


def test_a_perfect_score_has_a_degenerate_interval_and_a_paired_gain_over_chance():
    labels = [0, 0, 1, 1, 0, 1, 1, 0]
    groups = ["a", "a", "b", "b", "c", "d", "e", "f"]
    perfect = [0.1, 0.2, 0.8, 0.9, 0.3, 0.7, 0.6, 0.2]
    flat = [0.5] * len(labels)
    result = grouped_auc_interval(labels, {"flat": flat, "perfect": perfect}, groups, resamples=300)
    assert result["auc"] == {"flat": 0.5, "perfect": 1.0}
    assert result["auc_ci95"]["perfect"] == pytest.approx([1.0, 1.0])
    assert result["minus_flat_ci95"]["perfect"] == pytest.approx([0.5, 0.5])
    assert (result["groups"], result["positives"], result["negatives"]) == (6, 4, 4)


def test_resampling_keeps_a_patients_images_together():
    # patient "p" has ten negatives scored high: resampling images one by one would give tighter intervals
    rng = np.random.default_rng(1)
    labels = [0] * 10 + [1, 0] * 10
    scores = [0.9] * 10 + list(rng.random(20))
    by_patient = grouped_auc_interval(labels, {"s": scores}, ["p"] * 10 + [f"q{i}" for i in range(20)])
    by_image = grouped_auc_interval(labels, {"s": scores}, [f"i{i}" for i in range(30)])
    width = {name: r["auc_ci95"]["s"][1] - r["auc_ci95"]["s"][0] for name, r in
             {"patient": by_patient, "image": by_image}.items()}
    assert width["patient"] > width["image"]
    assert by_patient["auc"]["s"] == pytest.approx(by_image["auc"]["s"])


def test_peak_ratio_is_one_for_a_flat_map():
    assert peak_ratio(np.full((7, 7), 3.0)) == pytest.approx(1.0)
    peak = np.ones((7, 7))
    peak[0, 0] = 50  # the hottest cell holds 50 / 98 of the mass: 49 * 50 / 98 = 25 times a flat map's weight
    assert peak_ratio(peak) == pytest.approx(25.0)


@pytest.mark.unit
def test_expected_calibration_error_against_hand_computed_values():
    # Two bins used: (0.2, 0.3] holds 0.25 x2 with one right (gap 0.25); (0.9, 1.0] holds 0.95 x2, both right (0.05).
    assert expected_calibration_error([0.25, 0.25, 0.95, 0.95], [True, False, True, True]) == pytest.approx(
        0.5 * 0.25 + 0.5 * 0.05)
    assert expected_calibration_error([0.8] * 10, [True] * 8 + [False] * 2) == pytest.approx(0.0)
    assert expected_calibration_error([1.0, 0.0], [False, True]) == pytest.approx(1.0)


@pytest.mark.unit
def test_selective_accuracy_keeps_predictions_at_or_above_each_threshold():
    rows = selective_accuracy([0.9, 0.7, 0.5], [True, False, True], [0.5, 0.7, 0.95])
    assert [row["coverage"] for row in rows] == pytest.approx([1.0, 2 / 3, 0.0])
    assert rows[0]["accuracy"] == pytest.approx(2 / 3) and rows[1]["accuracy"] == 0.5 and np.isnan(rows[2]["accuracy"])


def test_ratio_interval_resamples_units_and_brackets_the_pooled_ratio():
    supported, cited = [3, 0, 2, 4, 1], [4, 2, 2, 4, 3]
    low, high = ratio_bootstrap_interval(supported, cited, seed=1)
    assert low < sum(supported) / sum(cited) < high
    assert ratio_bootstrap_interval([2, 4, 1], [2, 4, 1]) == [1.0, 1.0], "every unit fully supported"
    # By hand: units 1/1 and 0/3. A resample of two is both first (p 1/4, ratio 1.0), mixed (p 1/2, the pooled
    # 1/4 = 0.25, not the mean of the ratios 0.5) or both second (p 1/4, 0.0): the 30th and 70th percentiles are 0.25.
    assert ratio_bootstrap_interval([1, 0], [1, 3], resamples=4000, level=0.4) == [0.25, 0.25]
    assert all(value != value for value in ratio_bootstrap_interval([], []))
    with pytest.raises(ValueError, match="one of each per unit"):
        ratio_bootstrap_interval([1], [1, 2])
