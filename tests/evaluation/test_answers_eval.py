"""``medrag eval answers`` on a small real PubMedQA file through the real pipeline."""

from __future__ import annotations

import json

from evaluation.answers import evaluate_answers, render_markdown
from medrag.datasets.splits import DEFAULT_SPLIT


def test_answer_evaluation_reports_decisions_grounding_and_refusals(assistant, knowledge, pubmedqa, tmp_path):
    first = list(pubmedqa.items())[:40]  # abstracts present in the knowledge tenant; every label represented
    subset = {pmid: entry for label in ("yes", "no", "maybe")
              for pmid, entry in [item for item in first if item[1]["final_decision"] == label][:4]}
    questions = tmp_path / "qa.json"
    questions.write_text(json.dumps(subset))
    report = evaluate_answers(assistant, questions, tenant=knowledge, generate=1, out_dir=tmp_path / "out",
                              progress=False)
    labels = [entry["final_decision"] for entry in subset.values()]
    majority = max(("yes", "no", "maybe"), key=labels.count)
    assert report["majority_baseline"]["accuracy"] == labels.count(majority) / len(labels)
    for decider in ("extractive", "zero_shot_reader"):
        assert sum(map(sum, report[f"{decider}_decision"]["confusion_matrix"])) == len(labels)
        assert (tmp_path / "out" / f"{decider}_confusion.png").stat().st_size > 0
    rates = report["insufficient_evidence_rate"]
    assert rates["as_is"] <= rates["own_abstract_removed"], "removing the answer's abstract can only hurt"
    generated = report["generative"]
    assert generated["answers"] == 1 and 0 <= generated["citation_precision"] <= 1
    low, high = generated["ci95"]["citation_precision"]
    assert (low != low) == (generated["written"]["citations"] == 0), "an interval whenever something was cited"
    assert low != low or low - 1e-9 <= generated["citation_precision"] <= high + 1e-9
    assert generated["written"]["supported_citations"] <= generated["written"]["citations"]
    cosine = generated["cosine_rule"]
    assert cosine["written"]["sentences"] == generated["written"]["sentences"], "both judges read the same text"
    assert 0 <= cosine["citation_precision"] <= 1 and "former cosine rule" in render_markdown(report)
    assert (tmp_path / "out" / "answers.json").is_file() and (tmp_path / "out" / "insufficient_evidence.png").is_file()
    assert "| majority class" in render_markdown(report) and not report["decision_model_in_sample"]
    held_out = [pmid for pmid in subset if DEFAULT_SPLIT.part(f"pubmedqa:{pmid}") == "test"]
    assert report["decision_model_split"] == DEFAULT_SPLIT.name, "read from the committed decision model's card"
    assert 0 < report["held_out"]["questions"] == len(held_out) < len(subset)
    assert sum(map(sum, report["held_out"]["extractive_decision"]["confusion_matrix"])) == len(held_out)
    assert "| extractive, held-out questions |" in render_markdown(report)

    only_held_out = evaluate_answers(assistant, questions, tenant=knowledge, generate=0, held_out_only=True,
                                     progress=False)
    assert only_held_out["held_out_only"] and only_held_out["count"] == len(held_out)
