"""The numbered evidence an answer may cite: single stored sentences with their source and relevance.

The fusion module picks and orders them (``FusionView.selected``, trained to find the sentences that carry
an abstract's conclusion); without fusion the retrieval passages stand in, most relevant first. Relevance
is the cosine between the query and the sentence in the text encoder's space, one scale for both paths,
so the "insufficient evidence" threshold means the same thing everywhere.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from medrag.text.hostile import addresses_model
from medrag.types import Evidence

Encode = Callable[[Sequence[str]], np.ndarray]

# Retrieved text is data. Sentences that speak to an AI model ("ignore previous instructions", "you are now ...",
# chat-role markers, requests for patient data) are kept and shown, but they never count as support for a claim
# (``medrag.text.hostile`` holds the patterns; a whole source with such signs is withheld at retrieval).


@dataclasses.dataclass(frozen=True)
class EvidenceSentence:
    number: int
    """Its number in the prompt: the answer cites it as ``[number]``."""
    collection: str
    source_id: str
    sentence_index: int
    """Index into the stored object's ``sentences``."""
    text: str
    relevance: float
    """Cosine between the query and this sentence (text encoder); NaN for an image-only query."""
    vector: np.ndarray = dataclasses.field(repr=False, compare=False)
    addresses_model: bool = False
    """Looks like an instruction to the model: quoted as data, never accepted as support."""

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "collection": self.collection, "source_id": self.source_id,
                "sentence_index": self.sentence_index, "text": self.text,
                "relevance": None if np.isnan(self.relevance) else round(self.relevance, 4),
                "addresses_model": self.addresses_model}


def quoted_evidence(collection: str, source_id: str, sentences: Sequence[str]) -> list[EvidenceSentence]:
    """Sentences of one source as evidence numbered from 1, without vectors or relevance: for prompts built from
    a known text (an abstract, its conclusion) rather than from a search."""
    return [EvidenceSentence(number, collection, source_id, number - 1, text, float("nan"), np.zeros(0),
                             addresses_model(text)) for number, text in enumerate(sentences, 1)]


def _picks(evidence: Sequence[Evidence], selected: Sequence[tuple[int, int, float]] | None) -> list[tuple[int, int]]:
    """(evidence index, sentence index) candidates: the fusion's choice, else each item's passages in order."""
    if selected:
        return [(item, sentence) for item, sentence, _ in selected]
    picks = []
    for index, item in enumerate(evidence):
        sentences = item.properties.get("sentences") or []
        picks += [(index, sentences.index(passage)) for passage in item.passages if passage in sentences]
    return picks


def _sentence_vectors(item: Evidence, encode: Encode, dim: int) -> np.ndarray:
    try:
        return item.sentence_vectors(dim)
    except ValueError:  # ingested before sentence vectors were stored: encode now (the search warned already)
        return encode(item.properties.get("sentences") or [])


def gather_evidence(evidence: Sequence[Evidence], selected: Sequence[tuple[int, int, float]] | None,
                    query_vector: np.ndarray | None, encode: Encode, dim: int, limit: int) -> list[EvidenceSentence]:
    """Up to ``limit`` distinct evidence sentences numbered from 1: in the fusion's order when it selected them,
    else most relevant first."""
    vectors: dict[int, np.ndarray] = {}
    found: list[EvidenceSentence] = []
    seen: set[str] = set()
    for index, sentence in _picks(evidence, selected):
        item = evidence[index]
        text = (item.properties.get("sentences") or [])[sentence]
        key = " ".join(text.lower().split())
        if key in seen:  # the same boilerplate sentence ("No acute disease.") in many reports: cite it once
            continue
        seen.add(key)
        if index not in vectors:
            vectors[index] = _sentence_vectors(item, encode, dim)
        vector = vectors[index][sentence]
        relevance = float(vector @ query_vector) if query_vector is not None else float("nan")
        found.append(EvidenceSentence(0, item.collection, item.source_id, sentence, text, relevance, vector,
                                      addresses_model(text)))
    if not selected and query_vector is not None:  # the fusion's order stands; else the most relevant first
        found.sort(key=lambda s: -s.relevance)
    return [dataclasses.replace(s, number=number) for number, s in enumerate(found[:limit], 1)]
