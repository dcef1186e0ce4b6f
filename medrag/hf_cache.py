"""Models a user already has in the local Hugging Face cache. medrag never downloads from a hub."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


def cached_snapshot(repo: str, setting: str) -> Path:
    """The local snapshot of Hugging Face repo ``repo``; FileNotFoundError (naming ``setting``, the variable that
    points at a local folder instead) when it is not cached."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError):
        raise FileNotFoundError(
            f"{repo} is not in the local Hugging Face cache; download {repo!r} where there is internet "
            f"(huggingface-cli download) and copy the cache, since medrag never downloads models, or set {setting} "
            "to a local folder") from None


@contextlib.contextmanager
def quiet_loading() -> Iterator[None]:
    """Load weights without transformers' per-load "Loading weights" bar and load report on the terminal (both
    restored after): a model load is not progress a user waits on, and the report lists heads we drop on purpose
    (e.g. BERT's pooler under a sentence encoder)."""
    from transformers.utils import logging as transformers_logging

    enabled = transformers_logging.is_progress_bar_enabled()
    verbosity = transformers_logging.get_verbosity()
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers_logging.set_verbosity(verbosity)
        if enabled:
            transformers_logging.enable_progress_bar()
