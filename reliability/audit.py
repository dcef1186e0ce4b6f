"""Audit trail area: a chain of N lines over rotated files, tampered with in each of the three ways a security review
names (a line changed, a line removed, two lines swapped), each of which the verifier must catch at the right line.

Each tampering is done on a fresh copy of the same log, so one result cannot hide another; the untouched log must
verify clean (no false alarm). A change whose hash was recomputed too is tried as a fourth, harder case.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medrag.audit import AuditLog, canonical, log_files, verify
from medrag.config import Config
from reliability import register_suite

Tamper = Callable[[list[str]], tuple[list[str], int, str]]
"""Lines of one file -> the tampered lines, the 1-based line the verifier must name first, and its kind."""


def _change(lines: list[str]) -> tuple[list[str], int, str]:
    record = json.loads(lines[1])
    record["answer"]["text"] = "A different answer."
    return [lines[0], canonical(record).decode() + "\n", *lines[2:]], 2, "changed"


def _change_and_rehash(lines: list[str]) -> tuple[list[str], int, str]:
    record = json.loads(lines[1])
    record["answer"]["text"] = "A different answer."
    record["hash"] = hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()
    return [lines[0], canonical(record).decode() + "\n", *lines[2:]], 3, "removed"


def _remove(lines: list[str]) -> tuple[list[str], int, str]:
    return [lines[0], *lines[2:]], 2, "removed"


def _swap(lines: list[str]) -> tuple[list[str], int, str]:
    return [lines[0], lines[2], lines[1], *lines[3:]], 2, "reordered"


TAMPERINGS: dict[str, Tamper] = {"changed line": _change, "removed line": _remove, "swapped lines": _swap}


def _caught(source: Path, work: Path, tamper: Tamper) -> dict[str, Any]:
    """Tamper with the middle file of a copy of the log; did the verifier name that file, line and kind first?"""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(source, work)
    files = log_files(work / "audit.jsonl")
    target = files[len(files) // 2]
    lines, line, kind = tamper(target.read_text().splitlines(keepends=True))
    target.write_text("".join(lines))
    result = verify(work / "audit.jsonl")
    first = result.first
    found = first is not None and (first.path, first.line, first.kind) == (target, line, kind)
    return {"caught": found, "expected": f"{target.name}:{line}: {kind}",
            "reported": None if first is None else f"{first.path.name}:{first.line}: {first.kind}: {first.detail}",
            "breaks": len(result.breaks)}


def run(config: Config, out_dir: Path, quick: bool) -> dict[str, Any]:
    """Write the chain, verify it clean, then tamper with copies; ``config`` is unused: the log is a temp file."""
    count = 50 if quick else 1000
    with tempfile.TemporaryDirectory(prefix="medrag-audit-") as folder:
        source = Path(folder) / "log"
        log = AuditLog(source / "audit.jsonl", max_bytes=8 * 1024 if quick else 64 * 1024)
        started = time.perf_counter()
        for n in range(count):
            log.append({"kind": "ask", "tenant": "reliability", "actor": "reliability",
                        "request": {"question": f"Is there a pleural effusion in study {n}?", "note": "[NAME], cough."},
                        "evidence": [{"collection": "RadiologyReport", "source_id": f"CXR{n}"}],
                        "answer": {"text": f"No effusion in study {n} [1].", "decision": None}})
        append_ms = 1000 * (time.perf_counter() - started) / count
        clean = verify(source / "audit.jsonl")
        cases = {name: _caught(source, Path(folder) / name.replace(" ", "-"), tamper)
                 for name, tamper in TAMPERINGS.items()}
        rehashed = _caught(source, Path(folder) / "rehashed", _change_and_rehash)
    detected = sum(case["caught"] for case in cases.values())
    clean_ok = clean.ok and clean.lines == count
    return {
        "headline": {"audit tampering detected": f"{detected}/{len(cases)}",
                     "re-hashed change detected": "yes" if rehashed["caught"] else "no",
                     "clean log verified": f"{'yes' if clean_ok else 'NO'} ({clean.lines} lines, {len(clean.files)} "
                                           f"files)",
                     "append ms/line (fsync)": round(append_ms, 3)},
        "passed": clean_ok and detected == len(cases) and rehashed["caught"],
        "lines": count, "files": len(clean.files), "clean_breaks": [str(found) for found in clean.breaks],
        "tamperings": {**cases, "changed line, hash recomputed": rehashed},
    }


register_suite("audit", run)
