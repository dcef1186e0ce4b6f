"""What every loader yields: a record for the ingestion pipeline, or a problem to report.

Loaders never raise on one bad record: they yield a ``Problem`` naming the file, the record and the
field, and go on with the next. The pipeline counts, reports and exits non-zero if any occurred.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

Kind = Literal["article", "report", "case"]


@dataclasses.dataclass(frozen=True)
class Problem:
    """A record that could not be read."""

    origin: str
    """Where: file path and record locator, e.g. ``pubmed/x.xml.gz, record 17 (PMID 123)``."""
    reason: str
    field: str | None = None
    fix: str | None = None
    skipped: bool = False
    """True when the record is not an error but out of scope (e.g. a CT slice, a DICOM SR)."""

    def detail(self) -> str:
        """What is wrong and the fix, without the origin."""
        field = f"field {self.field!r}: " if self.field else ""
        return f"{field}{self.reason}" + (f" (fix: {self.fix})" if self.fix else "")

    def __str__(self) -> str:
        return f"{self.origin}: {self.detail()}"


@dataclasses.dataclass(frozen=True)
class SourceRecord:
    """One knowledge item as read from its source, before de-identification and encoding."""

    kind: Kind
    source_id: str
    """Stable id within its source: PMID, report id, image/case id."""
    source: str
    """Dataset or feed: ``pubmed``, ``pubtator-bc5cdr``, ``pubmedqa``, ``iu-openi``, ``covid``, ..."""
    fields: dict[str, Any]
    """Target fields named as in ``medrag.store.schema`` (plus ``sections`` for articles)."""
    origin: str
    image_path: Path | None = None
    """For imaging cases: the DICOM or image file the record points to."""
