"""The de-identification report names tags and actions, never the values it removed."""

from __future__ import annotations

import copy

from pydicom.dataset import Dataset

from medrag.deid.changes import ADDED, EMPTIED, REMOVED, REPLACED, header_changes
from medrag.deid.dicom import DicomDeidentifier


def _dataset() -> Dataset:
    dataset = Dataset()
    dataset.PatientName = "Doe^Jane"
    dataset.PatientID = "MRN-12345"
    dataset.PatientBirthDate = "19500101"
    dataset.StudyDescription = "CHEST PA"
    dataset.Modality = "DX"
    dataset.add_new(0x00091010, "LO", "vendor secret")
    return dataset


def test_each_kind_of_change_is_named_by_tag_and_action() -> None:
    before = _dataset()
    after = copy.deepcopy(before)
    after.PatientName = "ANON^1"
    after.PatientID = ""
    del after.PatientBirthDate
    del after[0x00091010]
    after.PatientIdentityRemoved = "YES"
    changes = {change.name: change for change in header_changes(before, after)}
    assert changes["PatientName"].action == REPLACED and changes["PatientName"].tag == "(0010,0010)"
    assert changes["PatientID"].action == EMPTIED
    assert changes["PatientBirthDate"].action == REMOVED
    assert changes["private tag"].action == REMOVED
    assert changes["PatientIdentityRemoved"].action == ADDED
    assert "Modality" not in changes and "StudyDescription" not in changes


def test_the_report_of_a_real_de_identification_holds_no_original_value() -> None:
    before = _dataset()
    after = DicomDeidentifier(b"k" * 32)(copy.deepcopy(before))
    report = repr([change.to_dict() for change in header_changes(before, after)])
    assert "PatientName" in report and "PatientIdentityRemoved" in report
    for value in ("Doe", "Jane", "MRN-12345", "19500101", "vendor secret"):
        assert value not in report
