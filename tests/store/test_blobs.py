"""Sentence vectors as a Weaviate blob: packing, the schema field, and searches that bring it back."""

from __future__ import annotations

import base64
import dataclasses
import uuid

import numpy as np
import pytest
from weaviate.classes.config import DataType

from medrag.store import (
    ARTICLES,
    SENTENCE_VECTORS,
    TEXT_VECTOR,
    Record,
    collection_spec,
    pack_vectors,
    unpack_vectors,
)
from medrag.store.schema import CollectionSpec


def test_pack_unpack_round_trip_is_float16_exact():
    matrix = np.random.default_rng(0).normal(size=(7, 384)).astype(np.float32)
    blob = pack_vectors(matrix)
    assert isinstance(blob, str) and len(base64.b64decode(blob)) == 7 * 384 * 2
    back = unpack_vectors(blob, 384)
    assert back.dtype == np.float32 and back.shape == (7, 384)
    np.testing.assert_array_equal(back, matrix.astype(np.float16).astype(np.float32))
    assert unpack_vectors(pack_vectors(np.zeros((0, 384))), 384).shape == (0, 384)


def test_unpack_names_a_length_that_is_not_whole_rows():
    blob = pack_vectors(np.ones((3, 384), dtype=np.float32))
    with pytest.raises(ValueError, match=r"2304 bytes is not a whole number of float16 rows of dim 500"):
        unpack_vectors(blob, 500)
    with pytest.raises(ValueError, match="expected a \\(rows, dim\\) matrix"):
        pack_vectors(np.ones(384))


@pytest.fixture
def sentence_records(text_encoder, pubmedqa):
    """Five real abstracts, each with its sentences and their vectors packed as ingestion stores them."""
    records = []
    for pmid, entry in list(pubmedqa.items())[:5]:
        sentences = [f"{label}: {text}" for label, text in zip(entry["LABELS"], entry["CONTEXTS"], strict=True)]
        text = " ".join(entry["CONTEXTS"])
        records.append(Record(pmid, {"text": text, "sentences": sentences,
                                     SENTENCE_VECTORS: pack_vectors(text_encoder.encode(sentences))},
                              {TEXT_VECTOR: text_encoder.encode([text])[0]}))
    return records


def test_every_search_and_fetch_brings_the_sentence_vectors_back(store, tenant, sentence_records, text_encoder):
    store.upsert(ARTICLES, sentence_records, tenant=tenant)
    first = sentence_records[0]
    query = first.properties["text"][:200]
    vector = text_encoder.encode([query])[0]
    found = {
        "hybrid": store.hybrid(ARTICLES, query, vector, tenant=tenant, limit=5),
        "near_vector": store.near_vector(ARTICLES, vector, tenant=tenant, limit=5),
        "bm25": store.bm25(ARTICLES, query, tenant=tenant, limit=5),
        "fetch": [store.fetch(ARTICLES, first.source_id, tenant=tenant)],
    }
    for kind, hits in found.items():
        assert hits and hits[0].source_id == first.source_id, kind
        for hit in hits:
            stored = hit.properties[SENTENCE_VECTORS]
            assert isinstance(stored, str), kind
            assert unpack_vectors(stored, 384).shape == (len(hit.properties["sentences"]), 384), kind
        assert hits[0].properties[SENTENCE_VECTORS] == first.properties[SENTENCE_VECTORS], kind
        assert {"text", "sentences", "source_id"} <= set(hits[0].properties), kind


def test_ensure_schema_adds_the_blob_to_a_collection_made_without_it(store):
    """A store created before sentence vectors existed gets the property, and it takes and returns blobs."""
    full = collection_spec(ARTICLES)
    name = f"Legacy{uuid.uuid4().hex[:12]}"
    without = tuple(field for field in full.fields if field.name != SENTENCE_VECTORS)
    old = CollectionSpec(name, "made before sentence vectors", without)
    try:
        store.ensure_schema([old])
        collection = store.client.collections.use(name)
        assert SENTENCE_VECTORS not in {p.name for p in collection.config.get().properties}
        tenant = collection.tenants
        tenant.create("t")
        collection.with_tenant("t").data.insert({"source_id": "old", "text": "stored before"})

        store.ensure_schema([dataclasses.replace(old, fields=full.fields)])
        properties = {p.name: p for p in collection.config.get().properties}
        assert properties[SENTENCE_VECTORS].data_type == DataType.BLOB
        store.ensure_schema([dataclasses.replace(old, fields=full.fields)])  # again: nothing left to add

        blob = pack_vectors(np.eye(2, 384, dtype=np.float32))
        target = collection.with_tenant("t")
        target.data.insert({"source_id": "new", "text": "stored after", SENTENCE_VECTORS: blob})
        objects = {o.properties["source_id"]: o.properties
                   for o in target.query.fetch_objects(return_properties=["source_id", SENTENCE_VECTORS]).objects}
        assert objects["new"][SENTENCE_VECTORS] == blob
        assert objects["old"].get(SENTENCE_VECTORS) is None
    finally:
        store.client.collections.delete(name)
