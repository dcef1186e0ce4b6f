"""Position-aware cross-attention between the query and the retrieved evidence (the module behind the ``fusion``
reranker); its losses and training live in ``training/``."""

from medrag.fuse.model import (
    CrossAttentionFusion,
    FusionBatch,
    FusionConfig,
    FusionExample,
    FusionOutput,
    collate,
)

__all__ = ["CrossAttentionFusion", "FusionBatch", "FusionConfig", "FusionExample", "FusionOutput", "collate"]
