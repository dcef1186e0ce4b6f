"""Evidence carries the stored sentence vectors to the fusion reranker, or says how to get them."""

from __future__ import annotations

import numpy as np
import pytest

from medrag.retrieve.retriever import Retriever, SourceSearch, rrf_merge
from medrag.store import ARTICLES, SENTENCE_VECTORS, TEXT_VECTOR, Record, pack_vectors


def test_evidence_decodes_the_sentence_vectors_of_searched_hits(store, tenant, text_encoder, pubmedqa):
    records = []
    for pmid, entry in list(pubmedqa.items())[:4]:
        sentences = [f"{label}: {text}" for label, text in zip(entry["LABELS"], entry["CONTEXTS"], strict=True)]
        records.append(Record(pmid, {"text": " ".join(entry["CONTEXTS"]), "sentences": sentences,
                                     SENTENCE_VECTORS: pack_vectors(text_encoder.encode(sentences))},
                              {TEXT_VECTOR: text_encoder.encode([" ".join(entry["CONTEXTS"])])[0]}))
    store.upsert(ARTICLES, records, tenant=tenant)
    question = next(iter(pubmedqa.values()))["QUESTION"]
    evidence = Retriever(store, text_encoder).search(question, [SourceSearch(ARTICLES)], tenant=tenant, k=4)
    assert len(evidence) == 4
    for item in evidence:
        vectors = item.sentence_vectors()
        expected = text_encoder.encode(item.properties["sentences"])
        assert vectors.dtype == np.float32 and vectors.shape == expected.shape
        assert np.allclose(vectors, expected, atol=1e-3)


def test_an_object_ingested_before_sentence_vectors_says_how_to_fix_it(store, tenant, text_encoder):
    text = "Right lower lobe consolidation."
    store.upsert(ARTICLES, [Record("old-1", {"text": text, "sentences": [text]},
                                   {TEXT_VECTOR: text_encoder.encode([text])[0]})], tenant=tenant)
    hits = store.hybrid(ARTICLES, text, text_encoder.encode([text])[0], tenant=tenant)
    [evidence] = rrf_merge({"a": (1.0, hits)})
    with pytest.raises(ValueError, match=r"PubmedArticle old-1 has no sentence_vectors.*re-run `medrag ingest"):
        evidence.sentence_vectors()
