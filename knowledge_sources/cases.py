"""Imaging cases: image+note tables (CSV/JSON), DICOM files or folders, and plain PNG/JPEG images.

DICOM headers are never read here: they carry patient data (PHI). A DICOM file becomes a case with
an empty ``source_id`` that the ingestion pipeline fills from the de-identified SOP Instance UID;
only the four ``DICM`` bytes after the preamble are looked at, to recognise the file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path

from knowledge_sources.mapping import Mapping, builtin_mapping, load_mapping
from knowledge_sources.readers import detect_format, walk
from knowledge_sources.records import Problem, SourceRecord
from medrag.config import LimitsConfig

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
TABLE_FORMATS = frozenset({"csv", "json", "jsonl"})
DICOM_PREAMBLE = 128
"""A DICOM Part 10 file has a 128-byte preamble, then ``DICM``."""


def _extension(path: Path) -> str:
    """The file extension; none for UID-style names such as ``1.2.840.113619.2.55`` (digits are no extension)."""
    suffix = path.suffix.lower()
    return "" if suffix[1:].isdigit() else suffix


def is_dicom(path: Path) -> bool:
    """Whether the file has the DICOM Part 10 signature (``DICM`` at byte 128)."""
    try:
        with path.open("rb") as stream:
            stream.seek(DICOM_PREAMBLE)
            return stream.read(4) == b"DICM"
    except OSError:
        return False


def _dicom_candidate(path: Path) -> bool:
    """In a folder: ``.dcm`` files (reported if not DICOM), and extensionless files with the signature."""
    return _extension(path) == ".dcm" or (_extension(path) == "" and is_dicom(path))


class _Notes:
    """Notes for image files, keyed by file name, from a notes table read with its mapping."""

    def __init__(self, records: Iterable[SourceRecord | Problem]):
        self.by_name: dict[str, SourceRecord] = {}
        self.problems: list[Problem] = []
        self.used: set[str] = set()
        for item in records:
            if isinstance(item, Problem):
                self.problems.append(item)
            elif item.source_id in self.by_name:
                self.problems.append(Problem(item.origin, f"a second note for {item.source_id!r}; the first is used",
                                             field="id", fix="keep one note per image file"))
            else:
                self.by_name[item.source_id] = item

    def attach(self, record: SourceRecord) -> SourceRecord:
        """The record with the note whose file name matches its image (with or without the extension)."""
        image = record.image_path or Path()
        key = next((name for name in (image.name, image.stem) if name in self.by_name), None)
        if key is None:
            return record
        self.used.add(key)
        return dataclasses.replace(record, fields={**record.fields, **self.by_name[key].fields})

    def unmatched(self) -> Iterator[Problem]:
        for name, note in self.by_name.items():
            if name not in self.used:
                yield Problem(note.origin, f"no image file named {name!r} was given", field="id",
                              fix="check the file-name column against the image files")


def _image_checked(item: SourceRecord | Problem) -> SourceRecord | Problem:
    if isinstance(item, SourceRecord) and item.image_path is not None and not item.image_path.is_file():
        return Problem(item.origin, f"image file not found: {item.image_path}", field="image",
                       fix="check the folder and file-name values; images are found relative to the table's folder")
    return item


def _file_case(path: Path, notes: _Notes) -> SourceRecord | Problem:
    """A DICOM file or a PNG/JPEG image as a case, with its note if one matches."""
    extension = _extension(path)
    if extension in IMAGE_SUFFIXES:
        return notes.attach(SourceRecord(kind="case", source_id=path.name, source="image", fields={},
                                         origin=str(path), image_path=path))
    if path.name.upper() == "DICOMDIR":
        return Problem(str(path), "DICOMDIR is the index of a DICOM medium, not an image", skipped=True)
    if extension in ("", ".dcm") and is_dicom(path):
        return notes.attach(SourceRecord(kind="case", source_id="", source="dicom", fields={},
                                         origin=str(path), image_path=path))
    if extension == ".dcm":
        return Problem(str(path), "not a DICOM Part 10 file: no DICM signature after the 128-byte preamble",
                       fix="re-save the file with its preamble (e.g. pydicom dcmwrite with enforce_file_format)")
    return Problem(str(path), "not a case table (CSV, JSON), DICOM file or PNG/JPEG image",
                   fix="pass tables, DICOM files or folders, and .png/.jpg images")


def load_cases(paths: Iterable[Path], notes: Path | None = None, mapping: str | Path | None = None,
               notes_mapping: str | Path | None = None,
               limits: LimitsConfig | None = None) -> Iterator[SourceRecord | Problem]:
    """Cases from image+note tables (``covid_metadata`` mapping unless ``mapping``), DICOM files and
    folders (walked for DICOM only), and PNG/JPEG files given directly.

    ``notes`` is a table of notes for DICOM/image files, read with ``notes_mapping`` (default
    ``case_notes``: a file-name column and a note column); a note whose file is not given is reported.
    ``limits`` bounds each table (size, text values); default ``LimitsConfig()``.
    """
    table_mapping = load_mapping(mapping) if mapping is not None else builtin_mapping("covid_metadata")
    note_mapping = load_mapping(notes_mapping) if notes_mapping is not None else builtin_mapping("case_notes")
    return _cases(paths, notes, table_mapping, note_mapping, limits)


def _cases(paths: Iterable[Path], notes: Path | None, table_mapping: Mapping, note_mapping: Mapping,
           limits: LimitsConfig | None) -> Iterator[SourceRecord | Problem]:
    attached = _Notes(note_mapping.read(Path(notes), limits=limits) if notes is not None else ())
    yield from attached.problems
    for path in walk(paths, _dicom_candidate):
        if isinstance(path, Problem):
            yield path
        elif detect_format(path.name) in TABLE_FORMATS:
            yield from map(_image_checked, table_mapping.read(path, limits=limits))
        else:
            yield _file_case(path, attached)
    yield from attached.unmatched()
