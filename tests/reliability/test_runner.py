"""``python -m reliability``: every area runs even when one raises, and the figures land in JSON and a summary."""

from __future__ import annotations

import json

import reliability
import reliability.__main__ as runner


def test_a_broken_area_is_reported_and_the_others_still_run(monkeypatch, tmp_path):
    def broken(config, out_dir, quick):
        raise RuntimeError("disk on fire")

    def fine(config, out_dir, quick):
        return {"headline": {"crashes left": 0, "quick": quick}, "passed": True}

    monkeypatch.setattr(runner, "AREAS", ())
    monkeypatch.setattr(reliability, "SUITES", {})
    monkeypatch.setattr(runner, "SUITES", reliability.SUITES)
    reliability.register_suite("broken", broken)
    reliability.register_suite("fine", fine)
    assert runner.main(["--quick", "--out", str(tmp_path)]) == 1, "a failed area fails the run"
    assert json.loads((tmp_path / "broken.json").read_text())["error"] == "RuntimeError: disk on fire"
    assert json.loads((tmp_path / "fine.json").read_text())["headline"] == {"crashes left": 0, "quick": True}
    page = (tmp_path / "summary.md").read_text()
    assert "| fine | yes | crashes left | 0 |" in page
    assert "| broken | **no** | error | RuntimeError: disk on fire |" in page
    assert runner.main(["--quick", "--only", "fine", "--out", str(tmp_path)]) == 0
