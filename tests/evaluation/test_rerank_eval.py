"""``medrag eval rerank`` on a small real PubMedQA file through the real pipeline and server."""

from __future__ import annotations

import json

import pytest

from evaluation.rerank import evaluate_rerankers, render_markdown
from medrag.assistant import Assistant
from medrag.datasets.splits import DEFAULT_SPLIT


def test_rerankers_are_compared_on_the_same_held_out_questions(config, store, text_encoder, joint_encoder,
                                                               knowledge, pubmedqa, tmp_path):
    questions = tmp_path / "qa.json"
    questions.write_text(json.dumps(dict(list(pubmedqa.items())[:40])))  # any file in the format
    held_out = [pmid for pmid in list(pubmedqa)[:40] if DEFAULT_SPLIT.part(f"pubmedqa:{pmid}") == "test"]
    shared = {"text_encoder": text_encoder, "joint_encoder": joint_encoder}
    assistants = {name: Assistant(config.replace(reranker=name, reader_rerank_top=2), store, **shared)
                  for name in ("retrieval", "fusion", "fusion+reader")}
    report = evaluate_rerankers(assistants, questions, tenant=knowledge, k=5, count=3, out_dir=tmp_path / "out",
                                progress=False)
    assert report["count"] == min(3, len(held_out)) > 0 and report["split"] == DEFAULT_SPLIT.name
    for name, row in report["rerankers"].items():
        assert row["hit@1_ci95"][0] <= row["hit@1"] <= row["hit@1_ci95"][1]
        assert 0 <= row["mrr"] <= 1 and row["rerank_ms_p50"] <= row["rerank_ms_p95"]
        assert ("mrr_minus_fusion_ci95" in row) == (name != "fusion"), "paired against the fusion module"
    assert "then the reader" in report["rerankers"]["fusion+reader"]["reranker"]
    assert "| fusion+reader |" in render_markdown(report) and (tmp_path / "out" / "rerank.png").stat().st_size > 0

    trained_on = tmp_path / "trained.json"
    trained_on.write_text(json.dumps({pmid: entry for pmid, entry in list(pubmedqa.items())[:40]
                                      if pmid not in held_out}))
    with pytest.raises(ValueError, match=r"trained\.json: no question to evaluate.*--all"):
        evaluate_rerankers(assistants, trained_on, tenant=knowledge, progress=False)
