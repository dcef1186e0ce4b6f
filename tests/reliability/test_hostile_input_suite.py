"""The hostile-input area of ``python -m reliability``: it runs every parser's fuzzer, reports cases and crashes,
and a crash in a parser is reported, not raised."""

from __future__ import annotations

from pathlib import Path

from hypothesis import strategies as st

from medrag.config import Config
from reliability import SUITES
from reliability.hostile_input import QUICK_EXAMPLES, Fuzzer, fuzz, run


def test_the_quick_run_tries_every_parser_and_leaves_no_crash(tmp_path: Path) -> None:
    figures = run(Config(), tmp_path, quick=True)
    tried = figures["headline"]["cases tried per parser"]
    assert set(tried) == {"PubMed XML", "report CSV", "mapping file", "question and note"}
    assert all(count >= QUICK_EXAMPLES for count in tried.values()), tried
    assert figures["headline"]["crashes left"] == 0, figures["crashes"]
    assert figures["passed"] is True and len(figures["crashes_found_and_fixed"]) >= 5
    assert SUITES["hostile_input"] is run


def test_a_crash_is_reported_with_its_input_not_raised() -> None:
    def parse(text: str) -> None:
        if "<" in text:
            raise KeyError("unexpected")

    tried, crashes = fuzz(Fuzzer("toy", st.text("<ab", max_size=5), parse), examples=50)
    assert tried > 0 and len(crashes) == 1
    assert crashes[0].startswith("KeyError: 'unexpected'") and "'<'" in crashes[0]
