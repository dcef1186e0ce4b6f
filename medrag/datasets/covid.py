"""The covid-chestxray-dataset format: a ``metadata.csv`` with an image folder.

One reader (:func:`read_covid_metadata`) gives typed rows with their finding class and patient group; cases
(the store's view), image-text pairs (the joint model's) and note queries (the router's) are built from it.
Any file in that format works; nothing depends on our copy's name or place.
"""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

from medrag.datasets.pairs import Pair
from medrag.deid.text import scrub_text

FINDING_CLASSES = ("COVID-19", "other pneumonia", "no finding")
INFECTION_MESH = frozenset({"pneumonia", "opacity", "consolidation", "infiltrate", "airspace disease"})
"""Report MeSH heads (the part before the first ``/``) that show what a COVID-19 or other pneumonia looks like."""


@dataclasses.dataclass(frozen=True)
class CovidRow:
    """One row of a metadata.csv-format file."""

    filename: str
    patient_id: str
    finding: str
    finding_class: str | None
    modality: str
    note: str
    """``clinical_notes`` with whitespace collapsed; not de-identified (cases and queries scrub it)."""
    image_path: Path
    """The ``folder`` column's folder (default ``images``) beside the CSV, then ``filename``."""
    group: str
    """Canonical split key ``covid:<patient group>`` (see :func:`patient_groups`)."""


@dataclasses.dataclass(frozen=True)
class CovidCase:
    source_id: str
    """The image file name: the case's id in the store (the ``covid_metadata`` mapping)."""
    note: str
    """The clinical note, de-identified."""
    finding_class: str | None
    group: str
    """Canonical split key; rows sharing an image file join one group."""
    image_path: Path


def finding_class(finding: str) -> str | None:
    """The evaluation class of a ``finding`` value: one of :data:`FINDING_CLASSES`, or None when unknown.

    Flat values (``COVID-19, ARDS``) and the later releases' hierarchical ones (``Pneumonia/Viral/COVID-19``)
    both count as COVID-19.
    """
    finding = finding.strip()
    if not finding or finding.lower() == "todo":
        return None
    if finding.lower() == "no finding":
        return "no finding"
    covid = any(part.strip().startswith("COVID-19") for part in finding.split("/"))
    return "COVID-19" if covid else "other pneumonia"


def patient_groups(rows: Sequence[Mapping[str, str]]) -> list[str]:
    """Each row's canonical group key ``covid:<file>``: rows sharing a patient id or an image file are one group
    (some images appear under two patient ids), named by its smallest file name so row order does not matter."""
    parent = list(range(len(rows)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    first_seen: dict[tuple[str, str], int] = {}
    for index, row in enumerate(rows):
        for key in (("patient", row.get("patientid", "").strip()), ("file", row["filename"].strip())):
            if key[1] and key in first_seen:
                parent[root(index)] = root(first_seen[key])
            first_seen.setdefault(key, index)
    names: dict[int, str] = {}
    for index, row in enumerate(rows):
        group = root(index)
        names[group] = min(names.get(group, row["filename"].strip()), row["filename"].strip())
    return [f"covid:{names[root(index)]}" for index in range(len(rows))]


def read_covid_metadata(metadata_csv: Path) -> list[CovidRow]:
    """Every row of a metadata.csv-format file (all modalities), each with its patient group."""
    path = Path(metadata_csv)
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if "filename" not in (reader.fieldnames or []):
            raise ValueError(f"{path}: no 'filename' column; a metadata.csv-format file needs filename (and "
                             "usually patientid, finding, modality, folder, clinical_notes)")
        rows = list(reader)
    for line, row in enumerate(rows, 2):
        if not (row["filename"] or "").strip():
            raise ValueError(f"{path}:{line}: field 'filename' is empty; give the image file of every row")
    return [CovidRow(filename=row["filename"].strip(), patient_id=(row.get("patientid") or "").strip(),
                     finding=(row.get("finding") or "").strip(), finding_class=finding_class(row.get("finding") or ""),
                     modality=(row.get("modality") or "X-ray").strip(),
                     note=" ".join((row.get("clinical_notes") or "").split()),
                     image_path=path.parent / ((row.get("folder") or "").strip() or "images") / row["filename"].strip(),
                     group=group)
            for row, group in zip(rows, patient_groups(rows), strict=True)]


def x_ray_rows(metadata_csv: Path) -> list[CovidRow]:
    """The radiograph rows (CT rows left out); patient groups still join across all rows."""
    return [row for row in read_covid_metadata(metadata_csv) if row.modality == "X-ray"]


def covid_cases(metadata_csv: Path) -> list[CovidCase]:
    """The X-ray rows of a metadata.csv-format file, one per image file (the first row wins), notes de-identified."""
    cases: dict[str, CovidCase] = {}
    for row in x_ray_rows(metadata_csv):
        if row.filename not in cases:
            cases[row.filename] = CovidCase(row.filename, scrub_text(row.note), row.finding_class, row.group,
                                            row.image_path)
    return list(cases.values())


def covid_pairs(metadata_csv: Path) -> list[Pair]:
    """Image-text pairs of the X-ray rows whose image exists: the clinical note and, when known, the finding."""
    pairs = []
    for row in x_ray_rows(metadata_csv):
        text = " ".join(part for part in (row.note, f"Finding: {row.finding}." if row.finding_class else "") if part)
        if row.image_path.is_file() and text:
            pairs.append(Pair(row.image_path, text, row.group, "covid", row.finding_class))
    return pairs


def report_is_relevant(finding: str, mesh: Sequence[str]) -> bool:
    """A report fits a case's finding class by its MeSH terms.

    COVID-19 and other pneumonia: any MeSH head in :data:`INFECTION_MESH` (pneumonia, opacity,
    consolidation, infiltrate, airspace disease). No finding: the report's only MeSH head is "normal".
    """
    heads = {term.split("/")[0].strip().lower() for term in mesh}
    if finding == "no finding":
        return heads == {"normal"}
    return bool(heads & INFECTION_MESH)
