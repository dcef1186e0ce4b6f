"""Radiology reports: Open-i/IU ecgen XML (single files or inside NLMCXR_reports.tgz) and CSV exports."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from knowledge_sources.mapping import map_files
from knowledge_sources.records import Problem, SourceRecord
from medrag.config import LimitsConfig

BUILTIN_MAPPINGS = {
    "xml": "iu_openi_xml",
    "tar": "iu_openi_xml",
    "csv": "iu_reports_csv",
}
"""The built-in mapping for each file format: the IU layouts. Other exports pass ``mapping=``."""


def load_reports(paths: Iterable[Path], mapping: str | Path | None = None,
                 limits: LimitsConfig | None = None) -> Iterator[SourceRecord | Problem]:
    """Reports from ecgen XML files, tarballs of them (read as a stream) and CSV files, or folders of these.

    A report with neither findings nor impression is reported as a ``Problem`` (empty report). ``limits``
    bounds each file (size, text values, XML nesting); default ``LimitsConfig()``.
    """
    return map_files(paths, BUILTIN_MAPPINGS, mapping=mapping, limits=limits)
