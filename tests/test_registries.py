"""The registration points refuse what would silently break the pipeline, and name what is registered."""

from __future__ import annotations

import pytest

from medrag.generate.writer import modes, register_strategy, resolve_mode
from medrag.rerank import register_reranker, rerankers
from medrag.sources import (
    ARTICLE_SOURCE,
    Field,
    citation_label,
    collections,
    get_source,
    joint_collections,
    register_source,
)
from medrag.store import collection_spec


def test_the_built_in_sources_are_registered_with_their_vectors_and_labels():
    assert collections()[:3] == ("PubmedArticle", "RadiologyReport", "ImagingCase")
    assert joint_collections()[:2] == ("RadiologyReport", "ImagingCase")
    assert citation_label("PubmedArticle", "17323047") == "PubMed 17323047"
    fields = {field.name: field for field in collection_spec("RadiologyReport").fields}
    assert fields["findings"].searchable and not fields["source_id"].searchable and "sentence_vectors" in fields


def test_a_source_cannot_be_registered_twice_or_redefine_common_fields():
    with pytest.raises(ValueError, match="already registered"):
        register_source(ARTICLE_SOURCE)
    clash = type(ARTICLE_SOURCE)("Clash", "", "clash", "clashes", (Field("text", "prose"),), ARTICLE_SOURCE.load,
                                 ARTICLE_SOURCE.prepare)
    with pytest.raises(ValueError, match=r"fields \['text'\] are common"):
        register_source(clash)
    with pytest.raises(ValueError, match="unknown knowledge source 'Nope'; known: PubmedArticle"):
        get_source("Nope")


def test_rerankers_and_answer_strategies_are_registered_once():
    assert {"fusion", "retrieval", "reader", "fusion+reader"} <= set(rerankers())
    with pytest.raises(ValueError, match="already registered"):
        register_reranker("fusion", object)
    assert modes()[:3] == ("auto", "extractive", "generative")
    with pytest.raises(ValueError, match="reserved or already registered"):
        register_strategy("auto", object)
    assert resolve_mode("auto", "lm") == "generative" and resolve_mode("auto", "unknown") == "extractive"
    with pytest.raises(ValueError, match="mode 'creative' is not one of auto, extractive, generative"):
        resolve_mode("creative", None)
