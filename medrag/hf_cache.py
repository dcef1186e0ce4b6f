"""Models a user already has in the local Hugging Face cache. medrag never downloads from a hub."""

from __future__ import annotations

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
