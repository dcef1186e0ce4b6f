"""Indiana University / Open-i chest X-ray reports (ecgen XML, its tarball, or the CSV export).

Read through ``knowledge_sources.reports.load_reports``, the same mapping that ingests them, so training and
the store see one report the same way. Unreadable or empty reports are left out here: ingestion reports them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from pathlib import Path

from knowledge_sources.records import SourceRecord
from knowledge_sources.reports import load_reports


@dataclasses.dataclass(frozen=True)
class IUReport:
    report_id: str
    indication: str
    findings: str
    impression: str

    @property
    def group(self) -> str:
        """Canonical split key: one report is one group."""
        return f"iu:{self.report_id}"


def read_iu_reports(paths: Iterable[Path]) -> list[IUReport]:
    """The readable reports of these files or folders, in reading order."""
    return [IUReport(item.source_id, *(str(item.fields.get(name) or "") for name in
                                       ("indication", "findings", "impression")))
            for item in load_reports(paths) if isinstance(item, SourceRecord)]


def report_text_pairs(paths: Iterable[Path], limit: int) -> list[tuple[str, str]]:
    """(findings, impression) of up to ``limit`` reports that have both."""
    pairs = [(report.findings, report.impression) for report in read_iu_reports(paths)
             if report.findings and report.impression]
    return pairs[:limit]
