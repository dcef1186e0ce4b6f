"""Small scikit-learn models on disk: skops files (no pickle) beside a JSON card.

Loading trusts scikit-learn, NumPy and builtin types only, so a swapped model file cannot run code.
Used by the router's intent model and the yes/no/maybe decision model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import skops.io as sio

_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "builtins.", "collections.")


def save_model(model: Any, card: dict[str, Any], folder: Path, model_file: str, card_file: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sio.dump(model, folder / model_file)
    (folder / card_file).write_text(json.dumps(card, indent=2) + "\n")


def load_model(folder: Path, model_file: str, card_file: str, fix: str,
               error: type[Exception] = FileNotFoundError) -> tuple[Any, dict[str, Any]]:
    """The model and its card; ``error`` ending in ``fix`` (how to make a model) when missing or foreign."""
    model_path = folder / model_file
    if not model_path.is_file():
        raise error(f"no model at {model_path}; {fix}")
    untrusted = sio.get_untrusted_types(file=model_path)
    foreign = [name for name in untrusted if not name.startswith(_TRUSTED_PREFIXES)]
    if foreign:
        raise error(f"{model_path} contains types outside scikit-learn/NumPy ({', '.join(foreign)}); "
                    f"refusing to load it; {fix}")
    return sio.load(model_path, trusted=untrusted), json.loads((folder / card_file).read_text())
