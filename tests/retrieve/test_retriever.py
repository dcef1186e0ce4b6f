"""Retrieval across sources with weighted RRF, on real abstracts, reports and images in real Weaviate."""

from __future__ import annotations

import pytest

from knowledge_sources import DEMO_DIR
from medrag.imaging.radiograph import load_image_file
from medrag.retrieve.retriever import Retriever, SourceSearch, best_passages, rrf_merge
from medrag.store import ARTICLES, CASES, REPORTS, TEXT_VECTOR, Hit, Record


def _hit(collection: str, source_id: str) -> Hit:
    return Hit(collection, source_id, source_id, {"text": source_id})


def test_rrf_adds_up_rankings_by_weight():
    merged = rrf_merge({
        "a": (1.0, [_hit(ARTICLES, "x"), _hit(ARTICLES, "y")]),
        "b": (2.0, [_hit(ARTICLES, "y"), _hit(REPORTS, "x")]),
    })
    assert [(e.collection, e.source_id) for e in merged] == [(ARTICLES, "y"), (REPORTS, "x"), (ARTICLES, "x")]
    assert merged[0].score == pytest.approx(1 / 62 + 2 / 61)
    assert merged[0].ranks == {"a": 2, "b": 1}


def test_best_passages_keep_text_order():
    sentences = ["METHODS: We enrolled 40 patients.", "RESULTS: Pneumothorax occurred in 3.", "Other text."]
    assert best_passages("how often did pneumothorax occur in patients", sentences, most=2) == sentences[:2]


@pytest.fixture
def knowledge(store, tenant, text_encoder, joint_encoder, fill_demo_knowledge):
    fill_demo_knowledge(tenant, 60)
    return Retriever(store, text_encoder, joint_encoder)


def test_a_literature_question_finds_its_abstract_first_when_pubmed_weighs_most(knowledge, tenant, pubmedqa):
    sources = [SourceSearch(ARTICLES, weight=1.0), SourceSearch(REPORTS, weight=0.3)]
    found = 0
    for pmid, entry in list(pubmedqa.items())[:20]:
        evidence = knowledge.search(entry["QUESTION"], sources, tenant=tenant, k=5)
        found += evidence[0].source_id == pmid
        assert evidence[0].passages, "the best-matching sentences are kept"
    assert found >= 15, f"own abstract first for only {found} of 20 questions"


def test_an_image_query_also_ranks_by_the_joint_vector(knowledge, tenant):
    image = load_image_file(DEMO_DIR / "covid" / "images" / "12941_2020_358_Fig1_HTML.jpg")
    evidence = knowledge.search("", [SourceSearch(CASES), SourceSearch(REPORTS)], image=image, tenant=tenant)
    assert evidence[0].source_id == "12941_2020_358_Fig1_HTML.jpg"
    assert set(evidence[0].ranks) == {"ImagingCase/joint"}
    assert any(item.collection == REPORTS for item in evidence)


def test_repeated_queries_come_from_the_cache_until_a_write(knowledge, store, tenant, pubmedqa):
    question = next(iter(pubmedqa.values()))["QUESTION"]
    sources = [SourceSearch(ARTICLES)]
    first = knowledge.search(question, sources, tenant=tenant)
    second = knowledge.search(question, sources, tenant=tenant)
    assert [e.source_id for e in first] == [e.source_id for e in second]
    stats = knowledge.cache.stats()
    assert stats["embedding_hits"] >= 1 and stats["results_hits"] >= 1
    misses = stats["results_misses"]
    store.upsert(ARTICLES, [Record("late-arrival", {"text": question}, {TEXT_VECTOR: [0.0] * 383 + [1.0]})],
                 tenant=tenant)
    after_write = knowledge.search(question, sources, tenant=tenant)
    assert "late-arrival" in [e.source_id for e in after_write], "a write is visible at once, not after the TTL"
    assert knowledge.cache.stats()["results_misses"] == misses + 1
