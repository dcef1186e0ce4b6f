"""The covid metadata.csv reader: patient groups, finding classes, cases and pairs from one set of rows."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from medrag.datasets.covid import (
    covid_cases,
    covid_pairs,
    finding_class,
    patient_groups,
    read_covid_metadata,
    report_is_relevant,
)

pytestmark = pytest.mark.unit

FIELDS = ["patientid", "finding", "modality", "folder", "filename", "clinical_notes"]
ROWS = [
    ["7", "Pneumonia/Viral/COVID-19", "X-ray", "images", "p7-day1.jpg", "Seen on January 22, 2020 with fever."],
    ["7", "Pneumonia/Viral/COVID-19", "X-ray", "images", "p7-day3.jpg", "Day 3,\n worse."],
    ["8", "No Finding", "X-ray", "images", "shared.jpg", ""],
    ["9", "Pneumonia/Bacterial", "X-ray", "images", "shared.jpg", "Listed under a second patient id."],
    ["10", "todo", "CT", "images", "p10-ct.jpg", "A CT slice."],
    ["11", "Pneumonia/Fungal/Pneumocystis", "X-ray", "elsewhere", "a-missing.jpg", "No image on disk."],
]


def _write(folder: Path, rows: list[list[str]] = ROWS, fields: list[str] = FIELDS) -> Path:
    (folder / "images").mkdir(exist_ok=True)
    for row in rows:
        if len(row) == len(FIELDS) and row[3] == "images" and row[4].strip():
            (folder / "images" / row[4]).write_bytes(b"jpeg")
    path = folder / "metadata.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(fields)
        writer.writerows(rows)
    return path


def test_rows_share_a_group_by_patient_or_by_image_named_by_the_smallest_file(tmp_path):
    rows = read_covid_metadata(_write(tmp_path))
    groups = [row.group for row in rows]
    assert groups[0] == groups[1] == "covid:p7-day1.jpg"
    assert groups[2] == groups[3] == "covid:shared.jpg", "one image under two patient ids is one group"
    assert len(set(groups)) == 4
    reordered = [dict(zip(FIELDS, row, strict=True)) for row in reversed(ROWS)]
    assert patient_groups(reordered) == list(reversed(groups)), "row order does not rename a group"


def test_rows_are_typed_with_finding_class_note_and_image_path(tmp_path):
    rows = read_covid_metadata(_write(tmp_path))
    assert [row.finding_class for row in rows] == ["COVID-19", "COVID-19", "no finding", "other pneumonia", None,
                                                   "other pneumonia"]
    assert rows[1].note == "Day 3, worse." and rows[0].patient_id == "7" and rows[4].modality == "CT"
    assert rows[0].image_path == tmp_path / "images" / "p7-day1.jpg"
    assert rows[5].image_path == tmp_path / "elsewhere" / "a-missing.jpg"


def test_cases_are_x_rays_one_per_file_with_scrubbed_notes(tmp_path):
    cases = covid_cases(_write(tmp_path))
    assert [case.source_id for case in cases] == ["p7-day1.jpg", "p7-day3.jpg", "shared.jpg", "a-missing.jpg"]
    assert "January 22, 2020" not in cases[0].note and "[DATE]" in cases[0].note
    assert cases[2].finding_class == "no finding", "the first row of a shared file wins"


def test_pairs_need_an_image_on_disk_and_a_text(tmp_path):
    pairs = covid_pairs(_write(tmp_path))
    assert [pair.image_path.name for pair in pairs] == ["p7-day1.jpg", "p7-day3.jpg", "shared.jpg", "shared.jpg"]
    assert pairs[2].text == "Finding: No Finding."
    assert pairs[1].text == "Day 3, worse. Finding: Pneumonia/Viral/COVID-19."
    assert {pair.source for pair in pairs} == {"covid"} and pairs[0].group == "covid:p7-day1.jpg"


def test_a_file_without_filenames_is_named(tmp_path):
    no_column = _write(tmp_path, [["1", "COVID-19"]], ["patientid", "finding"])
    with pytest.raises(ValueError, match=r"metadata\.csv: no 'filename' column"):
        read_covid_metadata(no_column)
    empty = _write(tmp_path, [ROWS[0], ["2", "COVID-19", "X-ray", "images", " ", "note"]])
    with pytest.raises(ValueError, match=r"metadata\.csv:3: field 'filename' is empty"):
        read_covid_metadata(empty)


def test_finding_classes_and_report_relevance():
    findings = ("COVID-19, ARDS", "Pneumonia/Viral/COVID-19", "Pneumonia/Aspiration", "No Finding", " todo ", "")
    assert [finding_class(finding) for finding in findings] == [
        "COVID-19", "COVID-19", "other pneumonia", "no finding", None, None]
    assert report_is_relevant("COVID-19", ["Opacity/lung/base/left"])
    assert report_is_relevant("no finding", ["normal"]) and not report_is_relevant("no finding", ["normal", "Nodule"])
