"""Schema, idempotent upserts, failure reporting, search and tenants, on the real Weaviate server."""

from __future__ import annotations

import itertools
import logging
import time

import numpy as np
import pytest
from weaviate.exceptions import WeaviateInsertManyAllFailedError

from medrag.sources import collections
from medrag.store import (
    ARTICLES,
    CASES,
    JOINT_VECTOR,
    TEXT_VECTOR,
    Filters,
    ImportFailed,
    Record,
    Store,
    StoreError,
    UnknownTenant,
    object_uuid,
)


@pytest.fixture(scope="module")
def abstracts(pubmedqa, text_encoder):
    """60 real PubMedQA abstracts as article records with MiniLM vectors."""
    entries = list(itertools.islice(((k, v) for k, v in pubmedqa.items() if v["YEAR"]), 60))
    texts = [" ".join(entry["CONTEXTS"]) for _, entry in entries]
    vectors = text_encoder.encode(texts)
    return [
        Record(pmid, {"text": text, "year": int(entry["YEAR"]), "source": "pubmedqa", "modality": "text",
                      "mesh": entry["MESHES"]}, {TEXT_VECTOR: vector})
        for (pmid, entry), text, vector in zip(entries, texts, vectors, strict=True)
    ]


def test_schema_is_created_once_and_reapplied_without_change(store):
    store.ensure_schema()
    for name in collections():
        config = store.client.collections.use(name).config.get()
        assert config.multi_tenancy_config.enabled
        assert set(config.vector_config) == {TEXT_VECTOR, JOINT_VECTOR}
        assert {"source_id", "source", "text", "year", "modality"} <= {p.name for p in config.properties}


def test_upsert_is_idempotent_by_source_id(store, tenant, abstracts):
    first = store.upsert(ARTICLES, abstracts, tenant=tenant)
    second = store.upsert(ARTICLES, abstracts, tenant=tenant)
    assert first.written == second.written == len(abstracts)
    assert store.count(ARTICLES, tenant=tenant) == len(abstracts)
    stored = store.fetch(ARTICLES, abstracts[0].source_id, tenant=tenant)
    assert stored is not None
    assert stored.uuid == object_uuid(ARTICLES, abstracts[0].source_id)
    assert stored.properties["text"] == abstracts[0].properties["text"]


def test_repair_walks_every_page_once_and_rewrites_nothing_on_a_clean_store(store, tenant, abstracts):
    """The client's iterator starts over on every iter(): a repair that sliced it into pages read page one forever."""
    store.upsert(ARTICLES, abstracts[:5], tenant=tenant)
    checked: list[str] = []
    unindexed = store.unindexed

    def counted(collection, source_ids, **options):
        checked.extend(source_ids)
        return unindexed(collection, source_ids, **options)

    store.unindexed = counted
    try:
        assert store.repair_indexes(ARTICLES, tenant=tenant, page=2) == []
    finally:
        del store.unindexed
    assert sorted(checked) == sorted(record.source_id for record in abstracts[:5])  # each object once
    store.delete(ARTICLES, [abstracts[0].source_id, "never-stored"], tenant=tenant)
    assert store.count(ARTICLES, tenant=tenant) == 4 and store.fetch(ARTICLES, abstracts[0].source_id,
                                                                     tenant=tenant) is None


def test_rejected_objects_are_reported_and_the_rest_written(store, tenant, abstracts, caplog):
    bad = Record("bad-year", {"text": "an abstract", "year": "nineteen ninety"}, {TEXT_VECTOR: [0.1] * 384})
    with caplog.at_level(logging.DEBUG), pytest.raises(ImportFailed) as failure:
        store.upsert(ARTICLES, [*abstracts[:3], bad], tenant=tenant)
    # weaviate-client's own dump of the batch (every object's text and vector) stays off the terminal and the logs
    assert "Failed to send" not in caplog.text and "an abstract" not in caplog.text
    assert failure.value.written == 3
    assert [source_id for source_id, _ in failure.value.failures] == ["bad-year"]
    assert "year" in failure.value.failures[0][1]
    assert store.count(ARTICLES, tenant=tenant) == 3


def test_all_rejected_batch_names_each_object(store, tenant):
    bad = [Record(f"bad-{i}", {"text": "x", "year": f"year {i}"}) for i in range(3)]
    report = store.upsert(ARTICLES, bad, tenant=tenant, raise_on_failure=False)
    assert report.written == 0
    assert [source_id for source_id, _ in report.failures] == ["bad-0", "bad-1", "bad-2"]
    assert all("year" in reason for _, reason in report.failures)


def _wrap_insert_many(store: Store, monkeypatch, wrap) -> None:
    """Route every batch ``store`` writes through ``wrap(objects, insert_many)``, with the real server's insert_many:
    a fault injected around real writes."""
    real = store._collection

    def wrapped(name, chosen_tenant):
        collection = real(name, chosen_tenant)
        insert_many = collection.data.insert_many
        monkeypatch.setattr(collection.data, "insert_many", lambda objects: wrap(objects, insert_many))
        return collection

    monkeypatch.setattr(store, "_collection", wrapped)


def test_batch_refused_whole_once_is_written_object_by_object(store, tenant, abstracts, monkeypatch):
    """A batch that fails whole once (a replica died mid-write, as in ``python -m reliability --only cluster``) is
    sent again one object at a time; those that go through count as written, not as failures."""
    refusals = []

    def refusing_once(objects, insert_many):
        if not refusals:
            refusals.append(len(objects))
            raise WeaviateInsertManyAllFailedError("cannot reach enough replicas: required 3 replicas, got 2")
        return insert_many(objects)

    _wrap_insert_many(store, monkeypatch, refusing_once)
    report = store.upsert(ARTICLES, abstracts[:4], tenant=tenant)
    assert refusals == [4] and report.written == 4 and report.failures == []
    assert store.count(ARTICLES, tenant=tenant) == 4


def test_batch_refused_whole_is_sent_again_alone_for_one_timeout_at_most(store, config, tenant, abstracts,
                                                                            monkeypatch):
    """Every send refused after a wait (a cluster without a Raft leader): the objects are tried alone only until
    the Store's timeout has passed, and every one is reported with the server's reason."""
    patient = Store(store.client, config.replace(weaviate={"timeout": 1}))
    sends = []

    def refusing(objects, _insert_many):
        sends.append(len(objects))
        time.sleep(0.6)
        raise WeaviateInsertManyAllFailedError("Here is the set of all errors: no leader elected")

    _wrap_insert_many(patient, monkeypatch, refusing)
    report = patient.upsert(ARTICLES, abstracts[:5], tenant=tenant, raise_on_failure=False)
    assert sends == [5, 1, 1]  # the batch, then singles until one second had passed
    assert [source_id for source_id, _ in report.failures] == [record.source_id for record in abstracts[:5]]
    assert all("no leader elected" in reason for _, reason in report.failures)
    assert report.written == 0 and store.count(ARTICLES, tenant=tenant) == 0


def test_on_written_reports_acknowledged_batches(store, tenant, abstracts):
    acknowledged: list[str] = []
    store.upsert(ARTICLES, abstracts, tenant=tenant, on_written=acknowledged.extend)
    assert acknowledged == [record.source_id for record in abstracts]


def test_hybrid_finds_each_question_s_own_abstract(store, tenant, abstracts, pubmedqa, text_encoder):
    store.upsert(ARTICLES, abstracts, tenant=tenant)
    questions = [pubmedqa[record.source_id]["QUESTION"] for record in abstracts[:20]]
    vectors = text_encoder.encode(questions)
    found = [
        record.source_id in {hit.source_id for hit in store.hybrid(ARTICLES, q, v, alpha=0.5, limit=5, tenant=tenant)}
        for record, q, v in zip(abstracts, questions, vectors, strict=False)
    ]
    assert sum(found) >= 16, f"own abstract in top 5 for only {sum(found)} of 20 questions"


def test_alpha_moves_hybrid_between_keyword_and_vector(store, tenant, abstracts):
    store.upsert(ARTICLES, abstracts, tenant=tenant)
    target = abstracts[7]
    unrelated_vector = np.asarray(abstracts[8].vectors[TEXT_VECTOR])
    query = " ".join(target.properties["text"].split()[:12])
    keyword = store.hybrid(ARTICLES, query, unrelated_vector, alpha=0.0, limit=1, tenant=tenant)
    vector = store.hybrid(ARTICLES, query, unrelated_vector, alpha=1.0, limit=1, tenant=tenant)
    assert keyword[0].source_id == target.source_id
    assert vector[0].source_id == abstracts[8].source_id


def test_near_vector_searches_the_named_vector(store, tenant, text_encoder):
    notes = ["bilateral ground-glass opacities, fever and cough", "right pneumothorax after central line"]
    text_vectors = text_encoder.encode(notes)
    joint_vectors = np.eye(2, 8, dtype=np.float32)  # a different space, to prove the target is honoured
    store.upsert(CASES, [
        Record(f"case-{i}", {"text": note, "note": note, "modality": "CR"},
               {TEXT_VECTOR: text_vectors[i], JOINT_VECTOR: joint_vectors[i]})
        for i, note in enumerate(notes)
    ], tenant=tenant)
    hits = store.near_vector(CASES, joint_vectors[1], target_vector=JOINT_VECTOR, limit=2, tenant=tenant)
    assert [hit.source_id for hit in hits] == ["case-1", "case-0"]
    assert hits[0].distance == pytest.approx(0.0, abs=1e-5)
    by_text = store.near_vector(CASES, text_encoder.encode(["collapsed lung"])[0], limit=1, tenant=tenant)
    assert by_text[0].source_id == "case-1"


def test_objects_without_a_joint_vector_are_stored_and_searchable_by_text(store, tenant, abstracts):
    store.upsert(ARTICLES, abstracts[:5], tenant=tenant)
    hits = store.near_vector(ARTICLES, abstracts[2].vectors[TEXT_VECTOR], limit=1, tenant=tenant)
    assert hits[0].source_id == abstracts[2].source_id


def test_filters_by_year_source_and_modality(store, tenant, abstracts):
    store.upsert(ARTICLES, abstracts, tenant=tenant)
    store.upsert(ARTICLES, [Record("other-source", {"text": "chest radiograph", "year": 2001, "source": "iu",
                                                     "modality": "CR"}, {TEXT_VECTOR: [0.05] * 384})], tenant=tenant)
    query_vector = abstracts[0].vectors[TEXT_VECTOR]
    years = [record.properties["year"] for record in abstracts]
    lo, hi = sorted(years)[len(years) // 4], sorted(years)[3 * len(years) // 4]
    in_range = store.near_vector(ARTICLES, query_vector, filters=Filters(year_from=lo, year_to=hi), limit=100,
                                 tenant=tenant)
    assert in_range and all(lo <= hit.properties["year"] <= hi for hit in in_range)
    assert len(in_range) == sum(lo <= year <= hi for year in years)
    only_iu = store.near_vector(ARTICLES, query_vector, filters=Filters(source="iu"), limit=100, tenant=tenant)
    assert [hit.source_id for hit in only_iu] == ["other-source"]
    cr = store.bm25(ARTICLES, "chest radiograph", filters=Filters(modality=["CR", "DX"]), tenant=tenant)
    assert [hit.source_id for hit in cr] == ["other-source"]


def test_tenants_are_isolated(store, tenant, abstracts):
    other = store.create_tenant(f"{tenant}-b")
    store.upsert(ARTICLES, abstracts[:4], tenant=tenant)
    assert store.count(ARTICLES, tenant=other) == 0
    assert store.fetch(ARTICLES, abstracts[0].source_id, tenant=other) is None
    assert store.count(ARTICLES, tenant=tenant) == 4


def test_unknown_tenant_and_collection_are_clear_errors(store):
    with pytest.raises(UnknownTenant, match="tenant 'no-such-hospital' does not exist"):
        store.count(ARTICLES, tenant="no-such-hospital")
    with pytest.raises(StoreError, match="unknown collection 'Nope'"):
        store.count("Nope")
