"""Hybrid retrieval per chosen source, merged across sources by weighted reciprocal-rank fusion.

Each source is searched with Weaviate hybrid search (BM25 + the ``text`` vector, alpha per source);
a query with an image also searches the ``joint`` vector of the sources that have one. Rankings are
merged with RRF (Cormack et al., 2009), each weighted by the route's weight for its source, and
de-duplicated by source id; the sentences that best match the query are kept as passages. A found source with signs
of manipulation (``medrag.text.hostile``) is withheld before the merge, with a warning naming it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from medrag.encode.joint import JointEncoder
from medrag.encode.text import TextEncoder
from medrag.imaging.radiograph import Radiograph
from medrag.retrieve.cache import QueryCache
from medrag.sources import citation_label, joint_collections
from medrag.store import Filters, Hit, Store
from medrag.text.hostile import hostile_signs
from medrag.types import Evidence, SourceSearch
from medrag.vectors import JOINT_VECTOR, TEXT_VECTOR

RRF_K = 60
"""The default constant of reciprocal-rank fusion (``Config.retrieval.rrf_k``): the original paper's and MedRAG's."""
_WORD = re.compile(r"[a-z0-9]+")


def rrf_merge(rankings: dict[str, tuple[float, Sequence[Hit]]], rrf_k: int = RRF_K) -> list[Evidence]:
    """Merge named, weighted rankings; the same (collection, source id) found twice adds up."""
    merged: dict[tuple[str, str], Evidence] = {}
    for name, (weight, hits) in rankings.items():
        for rank, hit in enumerate(hits, 1):
            key = (hit.collection, hit.source_id)
            evidence = merged.setdefault(key, Evidence(hit.collection, hit.source_id, 0.0, {}, hit.properties, []))
            evidence.score += weight / (rrf_k + rank)
            evidence.ranks[name] = rank
    return sorted(merged.values(), key=lambda evidence: evidence.score, reverse=True)


def withhold_hostile(rankings: dict[str, tuple[float, Sequence[Hit]]]
                     ) -> tuple[dict[str, tuple[float, Sequence[Hit]]], list[str]]:
    """The rankings without the sources that carry signs of manipulation, and a warning naming each one withheld.

    Judged per source, over its title, text and sentences, because screening sentence by sentence was measured to
    fail (``python -m reliability --only poisoning``): the instruction is dropped and the made-up claims beside it
    are cited. Withheld before the merge, so the next sources fill the depth and the answer is the one the clean
    knowledge gives. The warning says why, so that whoever ingested the file can check it.
    """
    signs: dict[tuple[str, str], list[str]] = {}
    for _, hits in rankings.values():
        for hit in hits:
            key = (hit.collection, hit.source_id)
            if key not in signs:
                texts = [hit.properties.get("title") or "", hit.properties.get("text") or "",
                         *(hit.properties.get("sentences") or [])]
                signs[key] = hostile_signs("\n".join(str(text) for text in texts))
    kept = {name: (weight, [hit for hit in hits if not signs[(hit.collection, hit.source_id)]])
            for name, (weight, hits) in rankings.items()}
    warnings = [f"{citation_label(collection, source_id)} was found and withheld from the evidence: it carries "
                f"{' and '.join(found)}, which a source written to inform a clinician does not; check the file it "
                "was ingested from" for (collection, source_id), found in signs.items() if found]
    return kept, warnings


def best_passages(query: str, sentences: Sequence[str], most: int = 3) -> list[str]:
    """The sentences sharing the most words with the query, in text order (cheap, no model call)."""
    terms = set(_WORD.findall(query.lower()))
    overlaps = [(len(terms & set(_WORD.findall(sentence.lower()))), index) for index, sentence in enumerate(sentences)]
    chosen = sorted(index for overlap, index in sorted(overlaps, reverse=True)[:most] if overlap)
    return [sentences[index] for index in chosen]


class Retriever:
    """Searches the chosen sources for a query; models load once, repeated queries come from the cache."""

    def __init__(self, store: Store, text_encoder: TextEncoder, joint_encoder: JointEncoder | None = None,
                 cache: QueryCache | None = None) -> None:
        self.store = store
        self.text_encoder = text_encoder
        self.joint_encoder = joint_encoder
        settings = store.config.retrieval
        self.cache = cache or QueryCache(settings.cache_size, settings.cache_ttl)
        self.rrf_k = settings.rrf_k
        self.passages = settings.passages
        store.write_listeners.append(self.cache.invalidate)

    def text_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """``text`` vectors of the queries: cached ones from the cache, the rest in one encoder batch."""
        return np.stack(self.cache.embeddings([("text", text) for text in texts], lambda keys: list(
            self.text_encoder.encode([text for _, text in keys]))))

    def text_vector(self, text: str) -> np.ndarray:
        return self.text_vectors([text])[0]

    def image_vector(self, image: Radiograph) -> np.ndarray | None:
        """The query image in the joint space; None without a joint model."""
        return None if self.joint_encoder is None else self.joint_encoder.encode_images([image])[0]

    def rankings(self, query: str, sources: Sequence[SourceSearch], *, text_vector: np.ndarray | None = None,
                 image_vector: np.ndarray | None = None, filters: Filters | None = None,
                 tenant: str | None = None) -> dict[str, tuple[float, Sequence[Hit]]]:
        """One weighted ranking per source (hybrid on the text), plus one per joint source for an image."""
        tenant = tenant or self.store.config.weaviate.tenant
        rankings: dict[str, tuple[float, Sequence[Hit]]] = {}
        if query.strip():
            vector = self.text_vector(query) if text_vector is None else text_vector
            for source in sources:
                key = ("hybrid", query, source.alpha, source.limit, repr(filters), tenant)
                rankings[f"{source.collection}/hybrid"] = (source.weight, self.cache.results(
                    source.collection, key, lambda s=source: self.store.hybrid(
                        s.collection, query, vector, alpha=s.alpha, target_vector=TEXT_VECTOR, filters=filters,
                        limit=s.limit, tenant=tenant)))
        if image_vector is not None:
            for source in sources:
                if source.collection in joint_collections():
                    rankings[f"{source.collection}/joint"] = (source.weight, self.store.near_vector(
                        source.collection, image_vector, target_vector=JOINT_VECTOR, filters=filters,
                        limit=source.limit, tenant=tenant))
        return rankings

    def merge(self, query: str, rankings: dict[str, tuple[float, Sequence[Hit]]], k: int = 10) -> list[Evidence]:
        """Top ``k`` of the fused rankings, each with the sentences that best match the query."""
        evidence = rrf_merge(rankings, self.rrf_k)[:k]
        for item in evidence:
            item.passages = best_passages(query, item.properties.get("sentences") or [], self.passages)
        return evidence

    def search(self, query: str, sources: Sequence[SourceSearch], *, image: Radiograph | None = None,
               filters: Filters | None = None, tenant: str | None = None, k: int = 10) -> list[Evidence]:
        """Top ``k`` evidence across ``sources``; an image adds a joint-vector ranking where sources have one."""
        image_vector = None if image is None else self.image_vector(image)
        return self.merge(query, self.rankings(query, sources, image_vector=image_vector, filters=filters,
                                               tenant=tenant), k)
