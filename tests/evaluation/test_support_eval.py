"""The grounding-check evaluation: its claim rules on real sentences, and a small run of both judges."""

from __future__ import annotations

import json

import pytest

from evaluation.support import (
    SUPPORTED,
    evaluate_support,
    first_clause,
    labelled_pairs,
    negated,
    number_changed,
    reversed_direction,
    without_parentheses,
)
from medrag.datasets.pubmedqa import read_pubmedqa
from medrag.generate.grounding import CosineSupport, ReaderSupport


@pytest.mark.unit
def test_the_rules_make_the_claims_they_name():
    sentence = "Mortality was higher in the night group (12.5% vs 8%), but length of stay did not differ."
    assert negated(sentence) == "Mortality was higher in the night group (12.5% vs 8%), but length of stay did differ."
    assert negated("Mortality was higher at night.") == "Mortality was not higher at night."
    assert reversed_direction(sentence).startswith("Mortality was lower in the night group")
    assert reversed_direction("Treatment increased survival.") == "Treatment decreased survival."
    assert number_changed(sentence).startswith("Mortality was higher in the night group (26.0% vs 8%)")
    shorter = "Mortality was higher in the night group, but length of stay did not differ."
    assert without_parentheses(sentence) == shorter
    assert first_clause(sentence) == "Mortality was higher in the night group (12.5% vs 8%)."
    assert negated("Results are shown.") == "Results are not shown."
    assert reversed_direction("The mean age was 54 years.") is None and number_changed("No numbers here.") is None


def test_labelled_pairs_come_from_real_abstracts_and_every_claim_differs_from_its_source(data_dir):
    records = read_pubmedqa(data_dir / "pubmed" / "pubmedqa_pqal_dev.json")
    pairs = labelled_pairs(records, 30, seed=1)
    assert len({pair["evidence"] for pair in pairs}) == 30
    assert {pair["kind"] for pair in pairs} >= {"verbatim", "negated", "reversed", "number changed", "other abstract"}
    for pair in pairs:
        assert pair["supported"] == (pair["kind"] in SUPPORTED)
        assert (pair["claim"] == pair["evidence"]) == (pair["kind"] == "verbatim")
    assert labelled_pairs(records, 30, seed=1) == pairs, "seeded: the same set every run"


def test_both_judges_are_scored_on_the_same_pairs(pubmedqa, text_encoder, reader, tmp_path):
    questions = tmp_path / "qa.json"
    questions.write_text(json.dumps(dict(list(pubmedqa.items())[:8])))  # any file in the format
    judges = [ReaderSupport(reader, text_encoder.encode), CosineSupport(text_encoder.encode)]
    report = evaluate_support(judges, text_encoder.encode, questions, count=4, out_dir=tmp_path / "out",
                              progress=False)
    assert report["evidence_sentences"] == 4 and report["pairs"] == sum(report["pairs_by_kind"].values())
    for name in ("reader entailment", "cosine"):
        judge = report["judges"][name]
        assert len(judge["scores"]) == report["pairs"]
        assert judge["pass_rate_by_kind"]["verbatim"] == 1.0, "a sentence supports itself"
        assert judge["pass_rate_by_kind"].get("number changed", 0.0) == 0.0, "the shared number rule"
    markdown = (tmp_path / "out" / "support.md").read_text()
    assert "| reader entailment |" in markdown and "| cosine |" in markdown
    assert json.loads((tmp_path / "out" / "support.json").read_text())["pairs"] == report["pairs"]
