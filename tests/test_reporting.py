"""Reports are strict JSON: an undefined figure is written as null, never as NaN."""

from __future__ import annotations

import json
import math

import numpy as np

from medrag.reporting import strict_json, write_json_and_markdown


def test_nan_and_infinity_become_null_at_any_depth(tmp_path):
    report = {"ci95": [float("nan"), np.float64("inf")], "nested": {"value": 0.5, "rows": ({"x": -math.inf},)}}
    assert strict_json(report) == {"ci95": [None, None], "nested": {"value": 0.5, "rows": [{"x": None}]}}
    json_path, markdown_path = write_json_and_markdown(report, "# r\n", tmp_path, "r")
    text = json_path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["nested"]["value"] == 0.5 and markdown_path.read_text() == "# r\n"
