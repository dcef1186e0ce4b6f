"""The fusion module as the rerank stage: score the candidates, pick their passages and the evidence sentences,
and keep the attention maps the UI draws.

It falls back to the retrieval order, with a warning that says why, where it cannot read the candidates:
objects stored without sentence vectors, or a collection the checkpoint was not trained on and that does not
declare a built-in source it resembles (``KnowledgeSource.like``). A joint model whose image tower gives no
feature grid of the checkpoint's shape (a ViT such as BiomedCLIP, another trunk) leaves the image out of the
rerank, with a warning: the image still searched by its joint vector.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from medrag.fuse.reranker import FusionReranker, query_sentences
from medrag.rerank.base import RerankContext, Reranked, RerankRequest
from medrag.sources import get_source
from medrag.types import Evidence, FusionView

log = logging.getLogger(__name__)


class FusionRerank:
    """``Config.reranker = "fusion"`` (the default): the cross-attention module of ``config.fusion_model``."""

    def __init__(self, context: RerankContext) -> None:
        self.context = context
        self.config = context.config

    @functools.cached_property
    def module(self) -> FusionReranker | None:
        """The checkpoint, loaded on first use; None (retrieval order) when the default one was never trained."""
        try:
            return FusionReranker.load(self.config.fusion_model)
        except FileNotFoundError:
            if self.config.fusion_model is not None:  # the user named a checkpoint: a missing one is their error
                raise
            log.warning("no fusion checkpoint; results stay in retrieval order (run `medrag train fusion`)")
            return None

    @property
    def name(self) -> str:
        return self.module.source if self.module is not None else "retrieval order (no fusion checkpoint)"

    @property
    def needs_image_features(self) -> bool:
        """The module reads the image tower's patch features (when there is a module)."""
        return self.module is not None

    def depth(self, k: int) -> int:
        return max(k, self.config.rerank_depth) if self.module is not None else k

    def _modality(self, collection: str) -> str | None:
        """The collection the module reads this one as: itself if trained on it, else the source it resembles."""
        known = self.module.model.config.evidence_modalities
        if collection in known:
            return collection
        like = get_source(collection).like
        return like if like in known else None

    def __call__(self, request: RerankRequest) -> Reranked:
        evidence, k = request.evidence, request.k
        if self.module is None or not evidence:
            return Reranked(evidence[:k])
        unreadable = sorted({item.collection for item in evidence if self._modality(item.collection) is None})
        if unreadable:
            return Reranked(evidence[:k], warnings=[
                f"fusion skipped, results in retrieval order: the fusion model was not trained on {unreadable}; "
                "declare the built-in source they resemble (KnowledgeSource.like) or retrain (`medrag train fusion`)"])
        try:
            candidates = [(item.sentence_vectors(self.context.dim), self._modality(item.collection))
                          for item in evidence]
        except ValueError as error:
            return Reranked(evidence[:k], warnings=[f"fusion skipped, results in retrieval order: {error}"])
        texts = query_sentences(request.query.question, request.query.note, self.module.model.config)
        image, warnings = self._image_features(request)
        if image is None and not texts:
            return Reranked(evidence[:k], warnings=[*warnings, "fusion skipped, results in retrieval order: the "
                                                    "request has no text and no image features the module reads"])
        text = self.context.encode(texts) if texts else None
        fused = self.module(text, image, candidates, selected=self.config.evidence_sentences)
        keep = fused.order[:k]
        place = {index: position for position, index in enumerate(keep)}
        for index in keep:
            _passages_from_scores(evidence[index], fused.sentence_scores[index], self.config.retrieval.passages)
        view = FusionView(
            scores=[fused.scores[index] for index in keep],
            retrieval_ranks=[index + 1 for index in keep],
            selected=[(place[c], s, score) for c, s, score in fused.selected if c in place],
            sentence_attention=[fused.sentence_attention[index] for index in keep],
            image_attention=None if fused.image_attention is None else [fused.image_attention[i] for i in keep],
            gate=fused.gate, model=self.module.source)
        return Reranked([evidence[index] for index in keep], view, warnings)

    def _image_features(self, request: RerankRequest) -> tuple[np.ndarray | None, list[str]]:
        """The query image's feature map if it has the shape the module was trained on, and why not otherwise."""
        if request.query.image is None:
            return None, []
        config = self.module.model.config
        expected = (config.image_dim, *config.grid)
        features = request.image_features
        if features is not None and np.shape(features) == expected:
            return features, []
        given = "no feature grid" if features is None else f"a {tuple(np.shape(features))} feature map"
        return None, [f"the image searched by its joint vector but took no part in the rerank: the fusion module "
                      f"reads a {expected} feature map and this joint model's image tower gives {given}; retrain "
                      "the fusion module on it (`medrag train fusion`)"]


def _passages_from_scores(item: Evidence, scores: list[float], most: int) -> None:
    """The item's ``most`` best-scored sentences, in text order, become its passages."""
    sentences = item.properties.get("sentences") or []
    best = sorted(range(len(scores)), key=lambda s: -scores[s])[:most]
    item.passages = [sentences[s] for s in sorted(best)]
