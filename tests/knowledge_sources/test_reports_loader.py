"""load_reports on the real Open-i/IU tarball, a single ecgen XML file and the IU CSV export."""

from __future__ import annotations

import inspect
import tarfile
from pathlib import Path

import pytest

from knowledge_sources.records import Problem, SourceRecord
from knowledge_sources.reports import load_reports

IU_REPORTS = 3955
EMPTY_IU_REPORTS = 28
"""Reports of the tarball with neither findings nor impression (e.g. CXR1137)."""


@pytest.fixture(scope="module")
def iu_dir(data_dir: Path) -> Path:
    return data_dir / "reports" / "iu-openi"


@pytest.fixture(scope="module")
def tarball(iu_dir: Path) -> list[SourceRecord | Problem]:
    return list(load_reports([iu_dir / "NLMCXR_reports.tgz"]))


def test_iu_tarball_every_report_read_or_reported_empty(tarball: list[SourceRecord | Problem]) -> None:
    records = [item for item in tarball if isinstance(item, SourceRecord)]
    problems = [item for item in tarball if isinstance(item, Problem)]
    assert len(records) + len(problems) == IU_REPORTS
    assert len(problems) == EMPTY_IU_REPORTS
    assert {problem.reason for problem in problems} == {"empty record: no findings or impression"}
    assert any(problem.origin.endswith("ecgen-radiology/1137.xml, record 1 (id CXR1137)") for problem in problems)
    assert len({record.source_id for record in records}) == len(records)
    assert {record.source for record in records} == {"iu-openi"}


def test_iu_report_fields(tarball: list[SourceRecord | Problem], iu_dir: Path) -> None:
    reports = {item.source_id: item for item in tarball if isinstance(item, SourceRecord)}
    first = reports["CXR1"]
    assert first.fields == {
        "indication": "Positive TB test",
        "comparison": "None.",
        "findings": "The cardiac silhouette and mediastinum size are within normal limits. There is no pulmonary "
                    "edema. There is no focal consolidation. There are no XXXX of a pleural effusion. There is no "
                    "evidence of pneumothorax.",
        "impression": "Normal chest x-XXXX.",
        "mesh": ["normal"],
        "image_ids": ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"],
        "year": 2013,
    }
    assert first.origin == f"{iu_dir / 'NLMCXR_reports.tgz'}:ecgen-radiology/1.xml, record 1 (id CXR1)"
    assert reports["CXR2"].fields["mesh"] == ["Cardiomegaly/borderline", "Pulmonary Artery/enlarged"]
    assert reports["CXR2"].fields["image_ids"] == ["CXR2_IM-0652-1001", "CXR2_IM-0652-2001"]
    without_images = [record for record in reports.values() if not record.fields["image_ids"]]
    assert len(without_images) == 101 and all(record.fields["image_ids"] == [] for record in without_images)


def test_iu_tarball_is_streamed(iu_dir: Path, tmp_path: Path) -> None:
    loader = load_reports([iu_dir / "NLMCXR_reports.tgz"])
    assert inspect.isgenerator(loader)
    assert next(loader).source_id == "CXR1"
    # A cut archive: a loader that listed or extracted it first would fail before any record.
    cut = tmp_path / "cut.tgz"
    cut.write_bytes((iu_dir / "NLMCXR_reports.tgz").read_bytes()[:150_000])
    items = list(load_reports([cut]))
    records = [item for item in items if isinstance(item, SourceRecord)]
    assert len(records) > 100 and records[0].source_id == "CXR1"
    assert isinstance(items[-1], Problem) and "could not be read to the end" in items[-1].reason


def test_single_ecgen_xml_file(iu_dir: Path, tmp_path: Path) -> None:
    with tarfile.open(iu_dir / "NLMCXR_reports.tgz") as archive:
        member = archive.extractfile("ecgen-radiology/2.xml")
        (tmp_path / "2.xml").write_bytes(member.read())
    (record,) = load_reports([tmp_path / "2.xml"])
    assert record.source_id == "CXR2" and record.fields["impression"] == "No acute pulmonary findings."
    assert record.origin == f"{tmp_path / '2.xml'}, record 1 (id CXR2)"


def test_iu_csv_export(iu_dir: Path) -> None:
    items = list(load_reports([iu_dir / "indiana_reports.csv"]))
    records = {item.source_id: item for item in items if isinstance(item, SourceRecord)}
    problems = [item for item in items if isinstance(item, Problem)]
    assert len(records) == 3826 and len(problems) == 25 and len(items) == 3851
    assert records["CXR2"].fields == {
        "indication": "Preop bariatric surgery.",
        "comparison": "None.",
        "findings": "Borderline cardiomegaly. Midline sternotomy XXXX. Enlarged pulmonary arteries. Clear lungs. "
                    "Inferior XXXX XXXX XXXX.",
        "impression": "No acute pulmonary findings.",
        "mesh": ["Cardiomegaly/borderline", "Pulmonary Artery/enlarged"],
    }
    assert records["CXR2"].source == "iu-openi"
