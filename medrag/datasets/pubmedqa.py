"""The PubMedQA JSON format: ``{PMID: {QUESTION, CONTEXTS, LABELS, LONG_ANSWER, final_decision, ...}}``.

One typed reader for every trainer and evaluation (questions for retrieval, routing and fusion; labels for
the yes/no/maybe model). It validates each record and names the file, the PMID and the field on error, so a
malformed evaluation file fails at once instead of silently losing questions. Any file in the format works
(the PQA-L, PQA-A and PQA-U releases, or a subset): nothing depends on our copy's name.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

DECISIONS = ("yes", "no", "maybe")
"""The values of ``final_decision``."""


@dataclasses.dataclass(frozen=True)
class PubMedQARecord:
    pmid: str
    question: str
    contexts: tuple[str, ...]
    """The abstract's paragraphs (without its conclusion)."""
    labels: tuple[str, ...]
    """Section label of each context (BACKGROUND, METHODS, ...)."""
    long_answer: str
    """The authors' conclusion; empty when the file has none."""
    final_decision: str | None
    """yes / no / maybe; None in unlabelled files (PQA-U)."""

    @property
    def group(self) -> str:
        """Canonical split key: one abstract is one group."""
        return f"pubmedqa:{self.pmid}"


def _strings(value: Any, where: str, field: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{where}: field {field!r} must be a list of strings, got {type(value).__name__}")
    return tuple(value)


def _record(path: Path, pmid: str, entry: Any, require_decision: bool) -> PubMedQARecord:
    where = f"{path}: PMID {pmid}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: the record must be a JSON object with QUESTION, CONTEXTS, ..., "
                         f"got {type(entry).__name__}")
    question = entry.get("QUESTION")
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"{where}: field 'QUESTION' is missing or empty; every record needs its question")
    contexts = _strings(entry.get("CONTEXTS"), where, "CONTEXTS")
    labels = _strings(entry.get("LABELS"), where, "LABELS")
    if labels and len(labels) != len(contexts):
        raise ValueError(f"{where}: field 'LABELS' has {len(labels)} labels for {len(contexts)} CONTEXTS; "
                         "give one section label per context or none")
    long_answer = entry.get("LONG_ANSWER") or ""
    if not isinstance(long_answer, str):
        raise ValueError(f"{where}: field 'LONG_ANSWER' must be a string, got {type(long_answer).__name__}")
    decision = entry.get("final_decision")
    if decision is None and require_decision:
        raise ValueError(f"{where}: field 'final_decision' is missing; this use needs labelled questions "
                         f"({'/'.join(DECISIONS)}), as in PubMedQA PQA-L")
    if decision is not None and decision not in DECISIONS:
        raise ValueError(f"{where}: field 'final_decision' is {decision!r}; it must be one of {', '.join(DECISIONS)}")
    return PubMedQARecord(pmid, question.strip(), contexts, labels, long_answer.strip(), decision)


def read_pubmedqa(path: Path, *, require_decision: bool = False) -> list[PubMedQARecord]:
    """The records of a PubMedQA-format file, in file order; ``require_decision``: every one must be labelled."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error}); a PubMedQA file is one JSON object "
                         "PMID -> {QUESTION, CONTEXTS, ...}") from None
    if not isinstance(entries, dict) or not entries:
        raise ValueError(f"{path}: expected a non-empty JSON object PMID -> {{QUESTION, CONTEXTS, ...}}, "
                         f"got {type(entries).__name__ if entries else 'nothing'}")
    return [_record(path, str(pmid), entry, require_decision) for pmid, entry in entries.items()]
