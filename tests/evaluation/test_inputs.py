"""Evaluation inputs are found by what they hold, under any name, and hashed for the report."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from evaluation.inputs import discover, provenance, sha256
from medrag.config import load_config


def _tarball(path, xml: bytes) -> None:
    with tarfile.open(path, "w:gz") as archive:
        member = tarfile.TarInfo("ecgen-radiology/1.xml")
        member.size = len(xml)
        archive.addfile(member, io.BytesIO(xml))


@pytest.mark.unit
def test_inputs_are_recognised_by_content_not_by_name(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "questions-2031.json").write_text(json.dumps({"1": {"QUESTION": "q?", "CONTEXTS": ["c"]}}))
    (tmp_path / "cases.csv").write_text("patientid,filename,finding,clinical_notes\n1,x.jpg,COVID-19,cough\n")
    (tmp_path / "other.csv").write_text("filename,label\nx.jpg,1\n")
    (tmp_path / "vqa.json").write_text(json.dumps([{"image_name": "x.jpg", "question": "q?", "answer": "yes"}]))
    (tmp_path / "split.json").write_text(json.dumps({"train": [{"id": "1"}], "val": [], "test": [{"id": "2"}]}))
    (tmp_path / "notes.json").write_text(json.dumps({"1": {"text": "not a question"}}))
    (tmp_path / "broken.json").write_text("{not json")
    _tarball(tmp_path / "open-i.tgz", b"<?xml version='1.0'?><eCitation><MedlineCitation/></eCitation>")
    _tarball(tmp_path / "empty.tgz", b"<?xml version='1.0'?><html/>")
    labeller = tmp_path / "labeller"
    (labeller / "phrases" / "mention").mkdir(parents=True)
    (labeller / "patterns").mkdir()
    found = discover(tmp_path)
    assert found.pubmedqa == [tmp_path / "a" / "questions-2031.json"]
    assert found.covid_metadata == [tmp_path / "cases.csv"]
    assert found.vqa_rad == [tmp_path / "vqa.json"]
    assert found.report_splits == [tmp_path / "split.json"]
    assert found.reports == [tmp_path / "open-i.tgz"]
    assert found.chexpert_labeller == [labeller]
    record = provenance(load_config(), found.paths(), seeds={"bootstrap": 0}, models={"reader": None})
    assert record["inputs_sha256"][str(tmp_path / "vqa.json")] == sha256(tmp_path / "vqa.json")
    assert len(record["inputs_sha256"]) == 6 and record["machine"]["cores"] >= 1
    json.dumps(record)  # the report is JSON


@pytest.mark.unit
def test_a_folder_hash_changes_with_a_file_name_or_its_bytes(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.jpg").write_bytes(b"1")
    first = sha256(tmp_path / "images")
    (tmp_path / "images" / "a.jpg").rename(tmp_path / "images" / "b.jpg")
    renamed = sha256(tmp_path / "images")
    (tmp_path / "images" / "b.jpg").write_bytes(b"2")
    assert len({first, renamed, sha256(tmp_path / "images")}) == 3


@pytest.mark.unit
def test_a_missing_folder_names_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match="pass --data"):
        discover(tmp_path / "nowhere")
