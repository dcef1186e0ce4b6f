"""medrag: multimodal retrieval-augmented assistant for chest radiography.

``from medrag import Assistant`` is the Python API (see ``medrag.assistant``); ``Answer`` is what its ``ask``
returns. Both are imported on first use so that ``import medrag`` (and the command line) stays light.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Answer", "Assistant"]


def __getattr__(name: str) -> Any:
    if name == "Assistant":
        from medrag.assistant import Assistant

        return Assistant
    if name == "Answer":
        from medrag.types import Answer

        return Answer
    raise AttributeError(f"module 'medrag' has no attribute {name!r}")
