"""PubMed articles: MEDLINE/PubMed XML, PubTator text and PubMedQA JSON, each by its built-in mapping."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from knowledge_sources.mapping import map_files
from knowledge_sources.readers import detect_format, looks_like_pubtator
from knowledge_sources.records import Problem, SourceRecord
from medrag.config import LimitsConfig

BUILTIN_MAPPINGS = {
    "xml": "pubmed_medline",
    "pubtator": "pubtator",
    "json": "pubmedqa",
    "jsonl": "pubmedqa",
}
"""The built-in mapping for each file format (``mappings/<name>.yaml``)."""


def _is_article_file(path: Path) -> bool:
    """In a folder: XML and JSON files, and text files that start like PubTator (not README.txt)."""
    fmt = detect_format(path.name)
    return fmt in BUILTIN_MAPPINGS and (fmt != "pubtator" or looks_like_pubtator(path))


def load_pubmed(paths: Iterable[Path], mapping: str | Path | None = None, source: str | None = None,
                limits: LimitsConfig | None = None) -> Iterator[SourceRecord | Problem]:
    """Articles from MEDLINE XML (``.xml``/``.xml.gz``), PubTator (``.txt``) and PubMedQA JSON files or folders.

    Each file is read by the built-in mapping for its format unless ``mapping`` names another.
    ``source`` overrides the dataset name (default: ``pubmed``, ``pubmedqa``, or ``pubtator-<folder>``).
    ``limits`` bounds each file (size, text values, XML nesting); default ``LimitsConfig()``.
    """
    return map_files(paths, BUILTIN_MAPPINGS, mapping=mapping, source=source, accept=_is_article_file, limits=limits)
