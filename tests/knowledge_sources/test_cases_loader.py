"""load_cases on the real COVID-19 metadata.csv, the real DICOM files, notes and plain images."""

from __future__ import annotations

import csv
import shutil
from collections import Counter
from pathlib import Path

import pytest

from knowledge_sources.cases import load_cases
from knowledge_sources.records import Problem, SourceRecord

COVID_ROWS = 506


@pytest.fixture(scope="module")
def covid_csv(data_dir: Path) -> Path:
    return data_dir / "cxr" / "covid" / "metadata.csv"


@pytest.fixture(scope="module")
def covid(covid_csv: Path) -> list[SourceRecord | Problem]:
    return list(load_cases([covid_csv]))


def test_covid_rows_are_xray_cases_with_their_images(covid: list[SourceRecord | Problem]) -> None:
    cases = [item for item in covid if isinstance(item, SourceRecord)]
    skipped = [item for item in covid if isinstance(item, Problem) and item.skipped]
    assert len(covid) == COVID_ROWS
    assert (len(cases), len(skipped)) == (506, 0)  # this copy of the collection holds X-rays only, no CT rows
    assert all(case.image_path.is_file() for case in cases)
    assert {case.source for case in cases} == {"covid"} and {case.kind for case in cases} == {"case"}
    # Five images are listed twice upstream, under two patient ids (285/339, 287/340).
    assert len({case.source_id for case in cases}) == 501


def test_covid_row_fields(covid: list[SourceRecord | Problem], covid_csv: Path) -> None:
    first = covid[0]
    assert first.source_id == "auntminnie-a-2020_01_28_23_51_6665_2020_01_28_Vietnam_coronavirus.jpg"
    assert first.image_path == covid_csv.parent / "images" / first.source_id
    fields = first.fields
    assert (fields["finding"], fields["view"], fields["age"], fields["sex"]) == ("COVID-19", "PA", 65, "M")
    assert (fields["year"], fields["modality"], fields["body_part"], fields["patient_id"]) == (2020, "X-ray", "CHEST",
                                                                                              "2")
    assert fields["note"].startswith("On January 22, 2020, a 65-year-old man")
    assert fields["license"] is None
    findings = Counter(item.fields["finding"] for item in covid)
    assert findings["COVID-19"] == 340 and findings[None] == 71  # "todo" upstream: not yet labelled
    assert Counter(item.fields["age"] is None for item in covid)[True] == 119


def test_ct_rows_skipped_and_missing_images_reported(covid_csv: Path, tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(covid_csv.parent / "images" / "000001-17.jpg", images)
    table = tmp_path / "cases.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["patientid", "sex", "age", "finding", "view", "modality", "date", "folder", "filename",
                         "clinical_notes"])
        writer.writerow(["1", "F", "52", "Pneumonia", "PA", "X-ray", "2013", "images", "000001-17.jpg", "Fever."])
        writer.writerow(["2", "M", "61", "COVID-19", "Axial", "CT", "2020", "images", "ct.jpg", ""])
        writer.writerow(["3", "M", "40", "COVID-19", "AP", "X-ray", "2020", "images", "gone.jpg", ""])
        writer.writerow(["4", "M", "abc", "COVID-19", "AP", "X-ray", "2020", "images", "000001-17.jpg", ""])
    case, ct, missing, bad_age = load_cases([table])
    assert case.fields["note"] == "Fever." and case.image_path == images / "000001-17.jpg"
    assert ct.skipped and ct.reason == "CT, not a radiograph" and ct.origin == f"{table}, line 3 (id ct.jpg)"
    assert not missing.skipped and missing.field == "image" and "gone.jpg" in missing.reason
    assert bad_age.field == "age" and bad_age.origin == f"{table}, line 5 (id 000001-17.jpg)"


def test_dicom_folder_without_reading_headers(data_dir: Path) -> None:
    items = list(load_cases([data_dir / "dicom"]))  # LICENSE and README.md files are not DICOM: not read
    assert len(items) == 6 and all(isinstance(item, SourceRecord) for item in items)
    assert {(item.source, item.source_id, item.kind) for item in items} == {("dicom", "", "case")}
    assert all(item.fields == {} for item in items)
    assert [item.image_path.name for item in items][:4] == ["RG1_J2KI.dcm", "RG1_J2KR.dcm", "RG1_UNCI.dcm",
                                                            "RG1_UNCR.dcm"]
    assert all(item.origin == str(item.image_path) for item in items)


def test_dicom_without_extension_dicomdir_and_fake_dcm(data_dir: Path, tmp_path: Path) -> None:
    real = data_dir / "dicom" / "nema-rg1" / "RG1_UNCR.dcm"
    shutil.copy(real, tmp_path / "1.2.840.10008.5.1.4")  # a UID-style name: ".4" is no extension
    shutil.copy(real, tmp_path / "DICOMDIR")
    (tmp_path / "fake.dcm").write_bytes(b"not dicom")
    (tmp_path / "notes.txt").write_text("ignored")
    items = list(load_cases([tmp_path]))
    assert [(Path(item.origin).name, type(item).__name__) for item in items] == [
        ("1.2.840.10008.5.1.4", "SourceRecord"), ("DICOMDIR", "Problem"), ("fake.dcm", "Problem")]
    assert items[1].skipped and not items[2].skipped and "DICM" in items[2].reason


def test_notes_attach_to_dicom_and_images_by_file_name(data_dir: Path, covid_csv: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes.csv"
    notes.write_text("filename,note,finding\n"
                     "RG1_UNCR.dcm,Cough for two weeks.,Pneumonia\n"
                     "RG1_J2KI,  Fever   and chills. ,\n"  # matched without the extension
                     "000001-17.jpg,Dyspnoea.,COVID-19\n"
                     "absent.dcm,No such image.,\n")
    image = covid_csv.parent / "images" / "000001-17.jpg"
    items = list(load_cases([data_dir / "dicom" / "nema-rg1", image], notes=notes))
    by_name = {Path(item.origin).name: item for item in items if isinstance(item, SourceRecord)}
    assert by_name["RG1_UNCR.dcm"].fields == {"note": "Cough for two weeks.", "finding": "Pneumonia"}
    assert by_name["RG1_J2KI.dcm"].fields == {"note": "Fever and chills.", "finding": None}
    assert by_name["RG1_J2KR.dcm"].fields == {}
    assert by_name["000001-17.jpg"].source == "image" and by_name["000001-17.jpg"].source_id == "000001-17.jpg"
    assert by_name["000001-17.jpg"].fields["note"] == "Dyspnoea."
    (unmatched,) = [item for item in items if isinstance(item, Problem)]
    assert unmatched.origin == f"{notes}, line 5 (id absent.dcm)" and "absent.dcm" in unmatched.reason


def test_plain_images_and_other_files(covid_csv: Path, tmp_path: Path) -> None:
    image = covid_csv.parent / "images" / "000001-2.jpg"
    other = tmp_path / "scan.bmp"
    other.write_bytes(b"BM")
    case, problem = load_cases([image, other])
    assert (case.source, case.source_id, case.fields, case.image_path) == ("image", "000001-2.jpg", {}, image)
    assert problem.origin == str(other) and "not a case table" in problem.reason
