"""Fusion checkpoints: weights as safetensors, the configuration and the model card as JSON (no pickle)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from medrag.fuse.model import CrossAttentionFusion, FusionConfig

DEFAULT_CHECKPOINT = Path(__file__).parent / "weights" / "fusion-default"
"""The reranker trained by ``medrag train fusion`` and committed with its card."""
CHECKPOINT_CONFIG = "fusion.json"
CHECKPOINT_WEIGHTS = "fusion.safetensors"


def save_checkpoint(model: CrossAttentionFusion, folder: Path, card: dict[str, Any]) -> None:
    """Weights as safetensors and the configuration plus the card as JSON: no pickle to trust on load."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, folder / CHECKPOINT_WEIGHTS)
    payload = {"config": dataclasses.asdict(model.config), **card}
    (folder / CHECKPOINT_CONFIG).write_text(json.dumps(payload, indent=2, default=str) + "\n")


class CorruptCheckpoint(ValueError):
    """A checkpoint file is there but cannot be read: truncated, garbled, or for another model shape."""


def load_checkpoint(folder: Path) -> tuple[CrossAttentionFusion, dict[str, Any]]:
    """The model and its card; a damaged file is one ``CorruptCheckpoint`` naming it and the fix, not a traceback
    from inside json, safetensors or torch."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    config_path = folder / CHECKPOINT_CONFIG
    if not config_path.is_file():
        raise FileNotFoundError(f"no fusion checkpoint at {folder}; run `medrag train fusion`")
    path = config_path
    try:
        card = json.loads(config_path.read_text())
        fields = {field.name for field in dataclasses.fields(FusionConfig)}
        raw = {key: value for key, value in card["config"].items() if key in fields}
        config = FusionConfig(**{key: tuple(value) if isinstance(value, list) else value
                                 for key, value in raw.items()})
        model = CrossAttentionFusion(config)
        path = folder / CHECKPOINT_WEIGHTS
        model.load_state_dict(load_file(path))
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError, SafetensorError) as error:
        raise CorruptCheckpoint(
            f"fusion checkpoint file {path} is damaged or does not match {CHECKPOINT_CONFIG} "
            f"({type(error).__name__}: {str(error).splitlines()[0][:200]}). Restore the folder {folder} from a copy "
            "(the committed one: reinstall medrag), retrain it with `medrag train fusion`, or point "
            "MEDRAG_FUSION_MODEL at a good checkpoint"
        ) from error
    return model.eval(), card
