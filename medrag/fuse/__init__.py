"""Stage 7, fuse: position-aware cross-attention between the query and the retrieved evidence."""

from medrag.fuse.losses import FusionLossConfig, FusionTargets, fusion_loss, make_targets
from medrag.fuse.model import (
    CrossAttentionFusion,
    FusionBatch,
    FusionConfig,
    FusionExample,
    FusionOutput,
    collate,
)

__all__ = [
    "CrossAttentionFusion",
    "FusionBatch",
    "FusionConfig",
    "FusionExample",
    "FusionLossConfig",
    "FusionOutput",
    "FusionTargets",
    "collate",
    "fusion_loss",
    "make_targets",
]
