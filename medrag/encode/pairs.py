"""Real image-text pairs for the joint space, split by patient.

- covid cases (``metadata.csv`` + images): the radiograph <-> its clinical note and finding;
- VQA-RAD chest images: the image <-> its questions and answers as statements;
- IU reports: findings <-> impression, text-only pairs that adapt the text projection to radiology.

A split never puts one patient (or one image listed under two patient ids) on both sides.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol, TypeVar

from knowledge_sources.records import SourceRecord
from knowledge_sources.reports import load_reports

FINDING_CLASSES = ("COVID-19", "other pneumonia", "no finding")


@dataclasses.dataclass(frozen=True)
class Pair:
    image_path: Path
    text: str
    group: str
    """Split unit: patient (covid) or image (VQA-RAD)."""
    source: str
    finding_class: str | None = None
    """One of FINDING_CLASSES for covid cases with a known finding; the zero-shot evaluation label."""


def finding_class(finding: str) -> str | None:
    finding = finding.strip()
    if not finding or finding.lower() == "todo":
        return None
    if finding.lower() == "no finding":
        return "no finding"
    return "COVID-19" if finding.startswith("COVID-19") else "other pneumonia"


def patient_groups(rows: Sequence[dict[str, str]]) -> list[str]:
    """Patient groups that also join rows sharing an image file (some images appear under two patient ids)."""
    parent = list(range(len(rows)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    first_seen: dict[tuple[str, str], int] = {}
    for index, row in enumerate(rows):
        for key in (("patient", row.get("patientid", "")), ("file", row["filename"])):
            if key[1] and key in first_seen:
                parent[root(index)] = root(first_seen[key])
            first_seen.setdefault(key, index)
    return [f"covid-{rows[root(index)]['filename']}" for index in range(len(rows))]


def covid_pairs(metadata_csv: Path) -> list[Pair]:
    """Pairs from a metadata.csv-format file; images are looked up in its ``folder`` column's folder."""
    with metadata_csv.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("modality", "X-ray") == "X-ray"]
    pairs = []
    for row, group in zip(rows, patient_groups(rows), strict=True):
        image = metadata_csv.parent / (row.get("folder") or "images") / row["filename"]
        label = finding_class(row.get("finding", ""))
        note = " ".join(row.get("clinical_notes", "").split())
        text = " ".join(part for part in (note, f"Finding: {row['finding']}." if label else "") if part)
        if image.is_file() and text:
            pairs.append(Pair(image, text, group, "covid", label))
    return pairs


def vqa_rad_pairs(questions_json: Path, image_dir: Path | None = None) -> list[Pair]:
    """One pair per chest image: its question-answer pairs joined as statements."""
    image_dir = image_dir or questions_json.parent / "images"
    by_image: dict[str, list[str]] = {}
    for item in json.loads(questions_json.read_text()):
        if str(item.get("image_organ", "")).upper().startswith("CHEST"):
            question = str(item["question"]).strip().rstrip("?")
            by_image.setdefault(item["image_name"], []).append(f"{question}? {str(item['answer']).strip()}.")
    return [Pair(image_dir / name, " ".join(statements), f"vqa-{name}", "vqa-rad")
            for name, statements in sorted(by_image.items()) if (image_dir / name).is_file()]


def report_text_pairs(paths: Iterable[Path], limit: int) -> list[tuple[str, str]]:
    """(findings, impression) of up to ``limit`` reports that have both."""
    pairs = []
    for item in load_reports(paths):
        if isinstance(item, SourceRecord) and item.fields.get("findings") and item.fields.get("impression"):
            pairs.append((item.fields["findings"], item.fields["impression"]))
            if len(pairs) >= limit:
                break
    return pairs


class Grouped(Protocol):
    @property
    def group(self) -> str: ...


Item = TypeVar("Item", bound=Grouped)


def split(items: Sequence[Item], fractions: tuple[float, float], seed: int
          ) -> tuple[list[Item], list[Item], list[Item]]:
    """(train, validation, test) of anything with a ``group`` (pairs, labelled queries): a stable hash of
    (seed, group) decides, so no group straddles."""
    train_share, validation_share = fractions
    parts: tuple[list[Item], list[Item], list[Item]] = ([], [], [])
    for item in items:
        digest = hashlib.sha256(f"{seed}:{item.group}".encode()).digest()
        position = int.from_bytes(digest[:8], "big") / 2**64
        index = 0 if position < train_share else 1 if position < train_share + validation_share else 2
        parts[index].append(item)
    return parts
