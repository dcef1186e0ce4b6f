"""The hostile-images area of ``python -m reliability``: its figures, and the guard that turns a hang into a crash."""

from __future__ import annotations

import pytest

from medrag.imaging.radiograph import DEFAULT_LIMITS
from reliability import SUITES, hostile_images


def test_the_quick_run_fuzzes_both_parsers_and_reports_no_crash_left(config, data_dir, tmp_path):
    figures = SUITES["hostile_images"](config, tmp_path, True)
    assert figures["headline"] == {"cases tried per parser": {"dicom": 30, "png": 30}, "crashes left": 0}
    assert figures["passed"] and not figures["crashes_left"]
    assert sum(figures["parsers"]["dicom"]["outcomes"].values()) == 30
    assert figures["crashes_found_and_fixed"] == list(hostile_images.CRASHES_FOUND_AND_FIXED)


def test_the_guard_stops_a_hang_and_names_the_case(monkeypatch):
    monkeypatch.setattr(hostile_images, "CASE_SECONDS", 0.2)
    with pytest.raises(hostile_images.Crash, match="spin: still running after 0 CPU seconds"), \
            hostile_images.guarded("spin", DEFAULT_LIMITS):
        while True:
            pass
