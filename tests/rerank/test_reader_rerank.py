"""The reader as a reranker: its relevance judgement on real abstracts, and its place over the fusion module."""

from __future__ import annotations

import numpy as np
import pytest

from knowledge_sources import DEMO_DIR
from medrag.assistant import Assistant
from medrag.datasets.iu_reports import read_iu_reports
from medrag.rerank.reader import ReaderRerank, candidate_text, permuted_view, relevance_prompt
from medrag.text.sentences import split_sentences
from medrag.types import Evidence, FusionView


def _abstract(pmid: str, entry: dict) -> Evidence:
    sentences = [sentence for context in entry["CONTEXTS"] for sentence in split_sentences(context)]
    return Evidence("PubmedArticle", pmid, 0.0, {}, {"title": "", "sentences": sentences}, [])


@pytest.mark.unit
def test_a_permuted_view_moves_every_per_item_field_together():
    view = FusionView(scores=[0.9, 0.5, 0.1], retrieval_ranks=[3, 1, 2],
                      selected=[(0, 2, 0.8), (2, 0, 0.7), (1, 1, 0.6)],
                      sentence_attention=[[1.0], [0.5, 0.5], [0.2, 0.8]],
                      image_attention=[np.full((2, 2), i) for i in range(3)], gate=0.3, model="fusion")
    moved = permuted_view(view, [2, 0, 1], k=2)
    assert moved.scores == [0.1, 0.9] and moved.retrieval_ranks == [2, 3]
    assert moved.selected == [(1, 2, 0.8), (0, 0, 0.7)], "the fusion's sentence order stays; item 1 is cut"
    assert moved.sentence_attention == [[0.2, 0.8], [1.0]]
    assert [grid[0, 0] for grid in moved.image_attention] == [2, 0] and moved.gate == 0.3


@pytest.mark.unit
def test_the_reader_sees_the_chosen_passages_else_the_first_sentences():
    item = Evidence("PubmedArticle", "1", 0.0, {}, {"title": "Night care.", "sentences": list("abcdef")}, [])
    assert candidate_text(item) == "Night care. a b c d"
    item.passages = ["Treatment was delayed."]
    assert candidate_text(item) == "Night care. Treatment was delayed."


def test_the_reader_ranks_a_questions_own_abstract_above_a_chest_radiograph_report(reader, pubmedqa):
    reports = read_iu_reports([DEMO_DIR / "iu-reports"])[:3]
    for (pmid, entry), report in zip(list(pubmedqa.items())[:3], reports, strict=True):
        sentences = split_sentences(f"{report.findings} {report.impression}")
        unrelated_item = Evidence("RadiologyReport", report.report_id, 0.0, {}, {"sentences": sentences}, [])
        own, unrelated = (reader.option_probabilities(relevance_prompt(reader, entry["QUESTION"], item),
                                                      ["Yes", "No"])[0]
                          for item in (_abstract(pmid, entry), unrelated_item))
        assert own > unrelated, (pmid, report.report_id, own, unrelated)  # a ranking: the order counts


def test_over_the_fusion_module_the_reader_reorders_only_the_top_candidates(config, store, text_encoder,
                                                                            joint_encoder, knowledge, pubmedqa):
    question = list(pubmedqa.values())[5]["QUESTION"]
    shared = {"text_encoder": text_encoder, "joint_encoder": joint_encoder}
    fusion = Assistant(config.replace(reranker="fusion"), store, **shared)
    both = Assistant(config.replace(reranker="fusion+reader", reader_rerank_top=3), store, **shared)
    assert isinstance(both.reranker, ReaderRerank) and "then the reader" in both.models()["reranker"]
    base = fusion.search(question=question, tenant=knowledge, k=6)
    reread = both.search(question=question, tenant=knowledge, k=6)
    ids = [item.source_id for item in base.evidence]
    reordered = [item.source_id for item in reread.evidence]
    assert sorted(reordered[:3]) == sorted(ids[:3]) and reordered[3:] == ids[3:]
    place = {source: index for index, source in enumerate(ids)}
    assert reread.fusion.scores == [base.fusion.scores[place[source]] for source in reordered]
    assert {reread.evidence[item].source_id for item, _, _ in reread.fusion.selected} <= set(reordered)
