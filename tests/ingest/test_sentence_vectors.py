"""Ingestion stores one text vector per sentence; stores from before that are re-encoded on the next run."""

from __future__ import annotations

import csv
import hashlib
import json
import shutil

import numpy as np
import pytest

from knowledge_sources import DEMO_DIR
from medrag.ingest.pipeline import Ingestor
from medrag.sources import CASE_SOURCE
from medrag.store import (
    ARTICLES,
    CASES,
    REPORTS,
    SENTENCE_VECTORS,
    TEXT_VECTOR,
    Record,
    collection_spec,
    unpack_vectors,
)


@pytest.fixture
def ingestor(config, store, tenant, text_encoder) -> Ingestor:
    return Ingestor(config, store, text_encoder=text_encoder, joint=False, tenant=tenant, progress=False,
                    batch_size=16)


@pytest.fixture
def abstracts(tmp_path, pubmedqa):
    path = tmp_path / "pubmedqa_12.json"
    path.write_text(json.dumps(dict(list(pubmedqa.items())[:12])))
    return path


def _objects(store, collection, tenant):
    # return_properties names the blob: without it Weaviate leaves blobs out.
    names = [field.name for field in collection_spec(collection).fields]
    return [item.properties for item in store.client.collections.use(collection).with_tenant(tenant)
            .query.fetch_objects(limit=500, return_properties=names).objects]


def _assert_vectors_match(objects, text_encoder):
    for properties in objects:
        sentences = properties["sentences"]
        assert sentences, properties["source_id"]
        stored = unpack_vectors(properties[SENTENCE_VECTORS], text_encoder.dim)
        assert stored.shape == (len(sentences), text_encoder.dim)
        expected = text_encoder.encode(sentences)
        cosine = np.sum(stored * expected, axis=1) / np.linalg.norm(stored, axis=1)
        assert cosine.min() > 0.999, (properties["source_id"], cosine.min())


def test_each_stored_sentence_has_its_text_vector(ingestor, abstracts, store, tenant, text_encoder, tmp_path):
    reports = tmp_path / "reports"
    reports.mkdir()
    for path in sorted((DEMO_DIR / "iu-reports").iterdir())[:15]:
        shutil.copy(path, reports)
    assert ingestor.pubmed([abstracts]).written == 12
    assert ingestor.reports([reports]).written >= 10
    assert ingestor.images([DEMO_DIR / "covid" / "metadata.csv"]).written == 8
    for collection in (ARTICLES, REPORTS, CASES):
        objects = _objects(store, collection, tenant)
        assert objects
        _assert_vectors_match(objects, text_encoder)


def test_a_store_from_before_sentence_vectors_is_re_encoded_once(ingestor, abstracts, store, tenant, text_encoder):
    ingestor.pubmed([abstracts])
    # Put back what the previous ingestion wrote: no sentence vectors, a hash without the marker.
    old = []
    for properties in _objects(store, ARTICLES, tenant):
        kept = {key: value for key, value in properties.items()
                if value is not None and key not in (SENTENCE_VECTORS, "content_hash", "source_id")}
        payload = json.dumps([ingestor.encoder_id, kept], sort_keys=True, default=str)
        kept["content_hash"] = hashlib.sha256(payload.encode()).hexdigest()
        old.append(Record(properties["source_id"], kept, {TEXT_VECTOR: text_encoder.encode([kept["text"]])[0]}))
    store.upsert(ARTICLES, old, tenant=tenant)
    assert all(SENTENCE_VECTORS not in p or p[SENTENCE_VECTORS] is None for p in _objects(store, ARTICLES, tenant))

    again = ingestor.pubmed([abstracts])
    assert (again.written, again.unchanged, again.added) == (12, 0, 0)
    _assert_vectors_match(_objects(store, ARTICLES, tenant), text_encoder)
    third = ingestor.pubmed([abstracts])
    assert (third.written, third.unchanged) == (0, 12)


def test_a_case_without_a_note_cites_its_finding(ingestor, store, tenant, text_encoder, tmp_path):
    folder = tmp_path / "covid"
    shutil.copytree(DEMO_DIR / "covid", folder)
    with (folder / "metadata.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows[0]["clinical_notes"] = ""
    with (folder / "metadata.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert ingestor.images([folder / "metadata.csv"]).written == 8
    cases = {p["source_id"]: p for p in _objects(store, CASES, tenant)}
    bare = cases[rows[0]["filename"]]
    assert bare["note"] in ("", None)
    assert bare["sentences"] == [f"FINDING: {rows[0]['finding']}"]
    noted = cases[rows[1]["filename"]]
    assert noted["sentences"][-1] == f"FINDING: {rows[1]['finding']}" and len(noted["sentences"]) >= 2
    _assert_vectors_match(cases.values(), text_encoder)


def test_a_case_with_neither_note_nor_finding_has_its_text_as_sentence(ingestor):
    properties = ingestor._preparation(CASE_SOURCE)._common("covid", {"view": "PA", "modality": "X-ray"},
                                                          ingestor.context.scrubber)
    assert properties["sentences"] == [properties["text"]] == ["Image: X-ray, PA."]
