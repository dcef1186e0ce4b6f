"""The deployment's de-identification key: made once, kept private, never logged."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from medrag.config import Config

MIN_KEY_BYTES = 16
"""A shorter key (an empty or cut-off file) would make pseudonyms guessable: refuse it."""
MAKE_KEY = "python -c 'import secrets; print(secrets.token_hex(32))' > {path} && chmod 600 {path}"


class DeidKeyError(RuntimeError):
    """The de-identification key file is missing where one was configured, unreadable, or too short."""


def deid_key(config: Config) -> bytes:
    """Key for pseudonyms, UID replacement and date shifts; created with mode 0600 on first use.

    Only the default file (``<home>/deid.key``) is made when missing. A configured ``deid_key_file`` that is
    missing is an error: a new key would give every patient new pseudonyms and date shifts, unlike the data already
    stored, so the fix is to restore the file, not to make another silently.
    """
    path = config.deid_key_file or config.home / "deid.key"
    try:
        if not path.exists():
            if config.deid_key_file is not None:
                raise DeidKeyError(
                    f"de-identification key file {path} (MEDRAG_DEID_KEY_FILE) does not exist. Restore it from your "
                    "backup: a new key gives every patient new pseudonyms and date shifts, unlike the data already "
                    "stored. For a new deployment, make one with "
                    f"`{MAKE_KEY.format(path=path)}` or unset MEDRAG_DEID_KEY_FILE to use <home>/deid.key"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it first: use theirs
                return _read(path)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(secrets.token_hex(32))
        return _read(path)
    except OSError as error:
        raise DeidKeyError(
            f"cannot read or create the de-identification key file {path}: {error.strerror or error}. Make it a "
            "readable file (mode 0600, owned by the user medrag runs as), restore it from your backup, or set "
            "MEDRAG_DEID_KEY_FILE to where it is"
        ) from None


def _read(path: Path) -> bytes:
    key = path.read_bytes().strip()
    if len(key) < MIN_KEY_BYTES:
        raise DeidKeyError(
            f"de-identification key file {path} holds {len(key)} bytes, fewer than {MIN_KEY_BYTES}: it is empty or "
            f"cut off. Restore it from your backup (or, for a new deployment, `{MAKE_KEY.format(path=path)}`)"
        )
    return key
