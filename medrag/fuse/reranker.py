"""The trained fusion module at query time: rerank one request's candidates, pick its evidence sentences.

Inputs are what the pipeline already has: the query's text-token vectors, the image feature map and
each candidate's stored sentence vectors. Outputs are plain numbers and arrays (no tensors), ready for
the answer, the generator and the UI's heatmaps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from medrag.fuse.checkpoint import DEFAULT_CHECKPOINT, load_checkpoint
from medrag.fuse.model import CrossAttentionFusion, FusionConfig, FusionExample, collate
from medrag.text.sentences import split_sentences

SENTENCES_SELECTED = 5


def query_sentences(question: str | None, note: str | None, config: FusionConfig) -> list[str]:
    """The query's text tokens: the question, then the note sentence by sentence (as many as fit)."""
    texts = ([question.strip()] if question and question.strip() else []) + split_sentences(note or "")
    return texts[: config.max_text_tokens]


@dataclasses.dataclass
class Fused:
    """Fusion of one query with its C candidates (in the order they were given)."""

    scores: list[float]
    """Rerank score per candidate (higher = more relevant)."""
    order: list[int]
    """Candidate indices, best first."""
    sentence_scores: list[list[float]]
    """Per candidate, the selection score of each of its sentences (the first ``max_sentences`` of them)."""
    selected: list[tuple[int, int, float]]
    """The best (candidate, sentence, score) over all candidates, best first: the generator's evidence."""
    sentence_attention: list[list[float]]
    """Per candidate, the share of the query's attention on each sentence (all of them sum to 1)."""
    image_attention: np.ndarray | None
    """(C, rows, cols) attention of the image patches on each candidate (summed over its sentences), each
    map scaled to sum to 1: where in the image the query looked when it read that candidate. None
    without an image."""
    gate: float | None
    """R2: the share of the visual stream in this query."""


class FusionReranker:
    def __init__(self, model: CrossAttentionFusion, source: str) -> None:
        self.model = model.eval()
        self.source = source

    @classmethod
    def load(cls, folder: str | Path | None = None) -> FusionReranker:
        """``None``: the committed checkpoint (``medrag train fusion``); otherwise a checkpoint folder."""
        path = Path(folder) if folder is not None else DEFAULT_CHECKPOINT
        model, card = load_checkpoint(path)
        return cls(model, f"{path} ({card.get('name', 'medrag fusion')})")

    @torch.inference_mode()
    def __call__(self, text: np.ndarray | None, image: np.ndarray | None,
                 candidates: Sequence[tuple[np.ndarray, str]], *, selected: int = SENTENCES_SELECTED) -> Fused:
        """``text`` (T, text_dim) or None; ``image`` a (channels, rows, cols) feature map or None;
        ``candidates`` one (sentence vectors (S, evidence_dim), collection name) per candidate, in retrieval
        order (the order is a feature: R4 encodes the retrieval rank)."""
        limit = self.model.config.max_sentences  # a longer text is read (and scored) up to this sentence
        example = FusionExample([[(vector, collection) for vector in vectors[:limit]]
                                 for vectors, collection in candidates], text=text, image=image)
        batch = collate([example], self.model.config)
        output = self.model(batch)
        count = len(candidates)
        scores = output.candidate_scores[0, :count].tolist()
        owner = batch.evidence_candidate[0][batch.evidence_mask[0]].numpy()
        sentence_scores = output.sentence_scores[0][batch.evidence_mask[0]].numpy()
        reading = output.evidence_attention[0][batch.evidence_mask[0]].numpy()
        per_candidate = [np.flatnonzero(owner == index) for index in range(count)]
        flat = sorted(((float(sentence_scores[e]), c, s) for c, rows in enumerate(per_candidate)
                       for s, e in enumerate(rows)), reverse=True)[:selected]
        return Fused(
            scores=scores,
            order=[int(index) for index in np.argsort(-np.asarray(scores), kind="stable")],
            sentence_scores=[sentence_scores[rows].tolist() for rows in per_candidate],
            selected=[(c, s, score) for score, c, s in flat],
            sentence_attention=[reading[rows].tolist() for rows in per_candidate],
            image_attention=self._image_maps(output.image_attention[0], owner, count) if image is not None else None,
            gate=float(output.gate[0]) if output.gate is not None else None,
        )

    @staticmethod
    def _image_maps(image_attention: torch.Tensor, owner: np.ndarray, count: int) -> np.ndarray:
        maps = image_attention[: len(owner)].numpy()
        summed = np.stack([maps[owner == index].sum(0) for index in range(count)])
        return summed / np.clip(summed.sum(axis=(1, 2), keepdims=True), 1e-12, None)
