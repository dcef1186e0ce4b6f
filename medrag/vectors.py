"""How vectors are named in the store, and matrices packed as Weaviate ``blob`` properties (float16,
little-endian, base64).

Written by hand because it is three lines: Weaviate takes and returns a blob as a base64 string,
float16 halves the size of float32 (ample for cosine similarity of normalised sentence vectors),
and no library packs a numpy matrix into that form for us. The row count is not stored: it is
the byte length divided by ``2 * dim``.
"""

from __future__ import annotations

import base64

import numpy as np

TEXT_VECTOR = "text"
"""The sentence-encoder vector of an object's text (hybrid search)."""
JOINT_VECTOR = "joint"
"""The image-text space vector: of a report's text or a case's image (image queries)."""
VECTORS = (TEXT_VECTOR, JOINT_VECTOR)
SENTENCE_VECTORS = "sentence_vectors"
"""The blob property holding one text-encoder vector per stored sentence."""

_FLOAT16 = np.dtype("<f2")


def pack_vectors(matrix: np.ndarray) -> str:
    """A (n, dim) matrix as base64 of its float16 little-endian bytes, row after row."""
    matrix = np.asarray(matrix)
    if matrix.ndim != 2:
        raise ValueError(f"pack_vectors: expected a (rows, dim) matrix, got shape {matrix.shape}")
    return base64.b64encode(np.ascontiguousarray(matrix, dtype=_FLOAT16).tobytes()).decode("ascii")


def unpack_vectors(blob: str, dim: int) -> np.ndarray:
    """The (n, dim) float32 matrix that ``pack_vectors`` packed."""
    raw = base64.b64decode(blob, validate=True)
    row_bytes = dim * _FLOAT16.itemsize
    if dim <= 0 or len(raw) % row_bytes:
        raise ValueError(
            f"unpack_vectors: {len(raw)} bytes is not a whole number of float16 rows of dim {dim} "
            f"({row_bytes} bytes each); the blob was packed with another dim or is corrupt"
        )
    return np.frombuffer(raw, dtype=_FLOAT16).reshape(-1, dim).astype(np.float32)
