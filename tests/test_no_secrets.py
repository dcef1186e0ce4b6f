"""No secret is committed: every tracked text file is searched for private keys and API-key-shaped strings.

Part of ``make audit`` (issue 18). medrag's own secrets (the de-identification key, the embedded Weaviate key) live
in the user's data folder and are never written in the tree; this keeps it so. A match names the file, the line
and the kind of secret, never the secret itself.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

SECRETS = {
    "private key": re.compile(r"-----BEGIN (?:RSA |DSA |EC |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----"),
    "AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})\b"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "OpenAI-style key": re.compile(r"\bsk-(?:proj-)?[A-Za-z0-9_-]{32,}\b"),
    "Hugging Face token": re.compile(r"\bhf_[A-Za-z0-9]{30,}\b"),
    "assigned secret": re.compile(
        r"""(?i)(?:api[_-]?key|secret(?:[_-]?key)?|access[_-]?token|auth[_-]?token|password)\b["']?\s*[:=]\s*"""
        r"""["']([A-Za-z0-9+/_\-]{20,})["']"""),
}
"""What a leaked credential looks like: key headers and the token formats of the services a deployment might use,
and a long literal assigned to a secret-named variable (a placeholder such as ``"changeme"`` is too short)."""

MAX_BYTES = 4 * 1024 * 1024
"""Tracked files are small (the largest, a fusion checkpoint, is 3 MB); anything bigger is read up to here."""


def tracked_files() -> list[Path]:
    """The files git tracks (``git ls-files``: read-only), so ignored data and the venv are not searched."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    return [ROOT / name for name in listed.stdout.decode("utf-8").split("\0") if name]


def find_secrets(text: str) -> list[tuple[int, str]]:
    """(line number, kind) of every secret-shaped string in ``text``."""
    return [(number, kind) for number, line in enumerate(text.splitlines(), 1)
            for kind, pattern in SECRETS.items() if pattern.search(line)]


def _text(path: Path) -> str | None:
    """The file as text, or None for binary files (a NUL byte in the first 8 KB) and deleted ones."""
    try:
        with path.open("rb") as handle:
            content = handle.read(MAX_BYTES)
    except FileNotFoundError:
        return None
    return None if b"\0" in content[:8192] else content.decode("utf-8", errors="replace")


def test_no_tracked_file_holds_a_secret() -> None:
    files = tracked_files()
    assert len(files) > 100, "git ls-files listed almost nothing: is this the repository root?"
    found = [f"{path.relative_to(ROOT)}:{number}: {kind}"
             for path in files if (text := _text(path)) is not None for number, kind in find_secrets(text)]
    assert not found, "secret-shaped strings in tracked files (remove them and rotate the credential):\n" + "\n".join(
        found)


@pytest.mark.parametrize(("planted", "kind"), [
    ("-----BEGIN " + "RSA PRIVATE KEY-----", "private key"),
    ("-----BEGIN " + "OPENSSH PRIVATE KEY-----", "private key"),
    ("aws_id = AKIA" + "IOSFODNN7EXAMPLE", "AWS access key id"),
    ("token: ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", "GitHub token"),
    ("key=AIza" + "SyD-1234567890abcdefghijklmnopqrstu", "Google API key"),
    ("OPENAI=sk-" + "abcdefghijklmnopqrstuvwxyz0123456789", "OpenAI-style key"),
    ("HF_TOKEN=hf_" + "abcdefghijklmnopqrstuvwxyzABCDEF", "Hugging Face token"),
    ('WEAVIATE_API_KEY = "' + "Zm9vYmFyYmF6cXV4cXV1eGNvcmdl" + '"', "assigned secret"),
    ("password: '" + "Tr0ub4dor-and-3-correct-horses" + "'", "assigned secret"),
])
def test_the_search_finds_planted_secrets(planted: str, kind: str) -> None:
    assert (2, kind) in find_secrets("first line\n" + planted + "\n")


@pytest.mark.parametrize("harmless", [
    'api_key: str | None = None',
    'password = "changeme"',
    'deid_key_file: Path | None = None',
    'DicomDeidentifier(b"query-input-test-key")',
    "sk-learn and ghp_short are not tokens",
])
def test_placeholders_and_code_are_not_secrets(harmless: str) -> None:
    assert find_secrets(harmless) == []
