"""The deployment's de-identification key: made once, kept private, never logged."""

from __future__ import annotations

import os
import secrets

from medrag.config import Config


def deid_key(config: Config) -> bytes:
    """Key for pseudonyms, UID replacement and date shifts; created with mode 0600 on first use."""
    path = config.deid_key_file or config.home / "deid.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first: use theirs
            return path.read_bytes().strip()
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_hex(32))
    return path.read_bytes().strip()
