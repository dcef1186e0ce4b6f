"""DICOM de-identification on real radiographs wrapped with planted PHI (see phi_dicom) and on the real DICOMs."""

from __future__ import annotations

import copy
import io
import logging
import subprocess
import sys
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import pydicom
import pytest
from phi_dicom import PRIVATE_CREATOR, PlantedPHI, load_templates, make_phi_dicom
from pydicom.dataset import Dataset
from pydicom.uid import UID, ImplicitVRLittleEndian, JPEGBaseline8Bit

from medrag.deid.dicom import BurnedInAnnotationError, DicomDeidentifier
from medrag.imaging.radiograph import read_dicom, to_radiograph

SALT = b"test-salt-for-medrag"
SAFE_CREATOR = "MEDRAG SAFE 1.0"


@pytest.fixture(scope="module")
def planted(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, PlantedPHI]:
    """Three studies: patient A twice (two templates, two dates), patient B once as JPEG baseline."""
    folder = tmp_path_factory.mktemp("phi")
    templates = load_templates(data_dir, 3)
    jpegs = sorted((data_dir / "cxr" / "covid" / "images").glob("*.jpg"))[:3]
    return {
        "a1": make_phi_dicom(jpegs[0], templates[0], folder / "a1.dcm", seed=11),
        "a2": make_phi_dicom(jpegs[1], templates[2], folder / "a2.dcm", 11, transfer_syntax=ImplicitVRLittleEndian),
        "b": make_phi_dicom(jpegs[2], templates[1], folder / "b.dcm", 12, transfer_syntax=JPEGBaseline8Bit),
    }


@pytest.fixture(scope="module")
def deid() -> DicomDeidentifier:
    return DicomDeidentifier(SALT)


def _texts(dataset: Dataset) -> list[str]:
    """Every value of every element, nested items and file meta included, as text."""
    texts: list[str] = []

    def visit(_item: Dataset, element: pydicom.DataElement) -> None:
        if element.VR != "SQ":
            value = element.value
            texts.append(value.decode("latin-1") if isinstance(value, bytes) else str(value))

    dataset.walk(visit)
    dataset.file_meta.walk(visit)
    return texts


def _written(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, dataset, enforce_file_format=True)
    return buffer.getvalue()


def _leaks(values: list[str], texts: list[str], raw: bytes) -> list[str]:
    joined, raw = "\n".join(texts).lower(), raw.lower()
    return [value for value in values if value.lower() in joined or value.lower().encode() in raw]


def test_no_planted_value_survives(planted, deid):
    for plant in planted.values():
        original = read_dicom(plant.path)
        assert _leaks(plant.values, _texts(original), plant.path.read_bytes()) == plant.values, "all planted"
        clean = deid(original, origin=str(plant.path))
        raw = _written(clean)
        assert _leaks(plant.values, _texts(clean), raw) == [], plant.path.name
        assert _leaks(plant.values, _texts(pydicom.dcmread(io.BytesIO(raw))), raw) == []


def test_private_overlay_curve_and_preamble_are_gone(planted, deid):
    original = read_dicom(planted["a1"].path)
    original.preamble = planted["a1"].values[0].encode().ljust(128, b"\0")
    clean = deid(original)
    assert clean.preamble == bytes(128)
    tags = [element.tag for element in clean.iterall()] + [element.tag for element in clean.file_meta]
    assert not any(tag.is_private for tag in tags)
    assert not any(tag.group & 0xFF00 in (0x5000, 0x6000) for tag in tags)
    assert "SourceApplicationEntityTitle" not in clean.file_meta


def test_whitelisted_private_creator_is_kept(planted):
    original = read_dicom(planted["a1"].path)
    original.private_block(0x0031, SAFE_CREATOR, create=True).add_new(0x01, "LO", "exposure index 412")
    clean = DicomDeidentifier(SALT, private_creator_whitelist=frozenset({SAFE_CREATOR}))(original)
    assert clean.private_block(0x0031, SAFE_CREATOR)[0x01].value == "exposure index 412"
    with pytest.raises(KeyError):
        clean.private_block(0x0029, PRIVATE_CREATOR)
    assert "113111" in [item.CodeValue for item in clean.DeidentificationMethodCodeSequence]


def test_uids_are_replaced_consistently_and_keyed_by_the_salt(planted):
    original = read_dicom(planted["a1"].path)
    first, second = DicomDeidentifier(SALT)(original), DicomDeidentifier(SALT)(original)
    other = DicomDeidentifier(b"another salt")(original)
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID"):
        new = first[keyword].value
        assert new != original[keyword].value
        assert new == second[keyword].value, keyword
        assert new != other[keyword].value, keyword
        assert new.startswith("2.25.") and len(new) <= 64 and UID(new).is_valid
    assert first.file_meta.MediaStorageSOPInstanceUID == first.SOPInstanceUID
    source = original.SourceImageSequence[0].ReferencedSOPInstanceUID
    assert first.SourceImageSequence[0].ReferencedSOPInstanceUID == DicomDeidentifier(SALT).replace_uid(source)
    assert first.SourceImageSequence[0].ReferencedSOPClassUID == original.SOPClassUID
    assert first.SOPClassUID == original.SOPClassUID
    assert first.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert _written(first) == _written(second), "nothing random: the same input gives the same file"


def test_uid_replacement_is_the_same_in_another_process():
    uid = "1.2.826.0.1.3680043.8.498.12345678901234567890"
    script = (
        "from medrag.deid.dicom import DicomDeidentifier; "
        f"print(DicomDeidentifier({SALT!r}).replace_uid({uid!r}))"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == DicomDeidentifier(SALT).replace_uid(uid)


def _day(value: str) -> date:
    return date(int(value[:4]), int(value[4:6]), int(value[6:8]))


def test_dates_shift_by_one_offset_per_patient(planted, deid):
    a1, a2, b = (read_dicom(planted[name].path) for name in ("a1", "a2", "b"))
    a1.SourceImageSequence[0].InstanceCreationDate = a1.StudyDate  # a date inside a sequence
    a1.AcquisitionDateTime = f"{a1.StudyDate}101500.000000+0100"
    clean_a1, clean_a2, clean_b = deid(a1), deid(a2), deid(b)
    assert a1.StudyDate != a2.StudyDate, "two studies of patient A on different days"
    shift = _day(clean_a1.StudyDate) - _day(a1.StudyDate)
    assert 30 <= -shift.days <= 365
    assert shift.days == deid.date_offset(a1.PatientID)
    assert _day(clean_a2.StudyDate) - _day(a2.StudyDate) == shift
    assert _day(clean_b.StudyDate) - _day(b.StudyDate) != shift, "patient B has its own offset"
    for keyword in ("SeriesDate", "AcquisitionDate", "ContentDate", "InstanceCreationDate"):
        assert _day(clean_a1[keyword].value) - _day(a1[keyword].value) == shift, keyword
    assert _day(clean_a1.SourceImageSequence[0].InstanceCreationDate) - _day(a1.StudyDate) == shift
    assert clean_a1.AcquisitionDateTime == f"{clean_a1.StudyDate}101500.000000+0100"
    assert clean_a1.StudyTime == a1.StudyTime, "times are kept"
    assert "PatientBirthDate" not in clean_a1
    assert clean_a1.LongitudinalTemporalInformationModified == "MODIFIED"


def test_pseudonymous_patient_and_method_record(planted, deid):
    a1, a2, b = (deid(read_dicom(planted[name].path)) for name in ("a1", "a2", "b"))
    assert a1.PatientID == deid.pseudonym(planted["a1"].patient_id) == a2.PatientID != b.PatientID
    assert len(a1.PatientID) == 16 and int(a1.PatientID, 16) >= 0
    assert str(a1.PatientName) == a1.PatientID
    assert a1.PatientIdentityRemoved == "YES"
    assert "Basic Profile" in a1.DeidentificationMethod
    codes = {(item.CodingSchemeDesignator, item.CodeValue) for item in a1.DeidentificationMethodCodeSequence}
    assert codes == {("DCM", "113100"), ("DCM", "113107"), ("DCM", "113108")}
    assert DicomDeidentifier(b"another salt").pseudonym(planted["a1"].patient_id) != a1.PatientID


def test_useful_metadata_and_pixels_are_kept(planted, deid):
    original = read_dicom(planted["a1"].path)
    original.Manufacturer, original.ManufacturerModelName = "Philips Medical Systems", "Digital Diagnost"
    original.WindowCenter, original.WindowWidth = 128, 256
    original.RescaleSlope, original.RescaleIntercept, original.RescaleType = 1, 0, "US"
    original.ImageLaterality = "U"
    clean = deid(original)
    for keyword in ("Modality", "ViewPosition", "BodyPartExamined", "ImageLaterality", "Rows", "Columns",
                    "PixelSpacing", "ImagerPixelSpacing", "Manufacturer", "ManufacturerModelName",
                    "PhotometricInterpretation", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
                    "SamplesPerPixel", "WindowCenter", "WindowWidth", "RescaleSlope", "RescaleIntercept",
                    "PatientSex", "PatientAge", "BurnedInAnnotation", "SOPClassUID", "ImageType"):
        assert clean[keyword].value == original[keyword].value, keyword
    assert clean.PixelData == original.PixelData
    np.testing.assert_array_equal(to_radiograph(clean).pixels, to_radiograph(original).pixels)


@pytest.mark.parametrize(("age", "kept"), [("093Y", "090Y"), ("090Y", "090Y"), ("089Y", "089Y"), ("081", "081Y"),
                                           ("006M", "006M"), ("old", None)])
def test_age_is_kept_and_capped(planted, deid, age, kept):
    original = read_dicom(planted["b"].path)
    _unchecked(original, "PatientAge", age)
    assert deid(original).get("PatientAge") == kept


def test_input_is_not_mutated(planted, deid):
    original = read_dicom(planted["a1"].path)
    snapshot = copy.deepcopy(original)
    deid(original)
    assert original == snapshot
    assert original.file_meta == snapshot.file_meta
    assert _texts(original) == _texts(snapshot)


def test_burned_in_annotation_is_refused_unless_allowed(data_dir, tmp_path, deid):
    template = load_templates(data_dir, 1)[0]
    jpeg = sorted((data_dir / "cxr" / "covid" / "images").glob("*.jpg"))[0]
    plant = make_phi_dicom(jpeg, template, tmp_path / "burned.dcm", seed=5, burned_in=True)
    original = read_dicom(plant.path)
    with pytest.raises(BurnedInAnnotationError, match="allow_burned_in=True after checking the pixels") as error:
        deid(original, origin=str(plant.path))
    assert str(plant.path) in str(error.value)
    assert _leaks(plant.values, [str(error.value)], b"") == []
    clean = DicomDeidentifier(SALT, allow_burned_in=True)(original)
    assert clean.BurnedInAnnotation == "YES" and clean.PatientIdentityRemoved == "YES"


def _unchecked(dataset: Dataset, keyword: str, value: str) -> None:
    """Set a value pydicom would warn about (as it is found in real archives), without the warning."""
    tag = pydicom.datadict.tag_for_keyword(keyword)
    dataset[tag] = pydicom.DataElement(tag, pydicom.datadict.dictionary_VR(tag), value,
                                       validation_mode=pydicom.config.IGNORE)


def test_no_phi_in_logs_or_warnings(planted, deid, caplog):
    original = read_dicom(planted["a1"].path)
    name = planted["a1"].values[0]
    _unchecked(original, "PatientBirthDate", name.split("^")[0])  # an invalid DA that names the patient
    _unchecked(original, "StudyDate", "2011-03-28")  # old ACR-NEMA style: not a DICOM DA
    buffer = io.BytesIO()
    with pydicom.config.disable_value_validation():
        pydicom.dcmwrite(buffer, original, enforce_file_format=True)
    from_file = pydicom.dcmread(io.BytesIO(buffer.getvalue()))  # values stay raw until the de-identifier reads them
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clean = deid(from_file)
    said = caplog.text + "".join(str(warning.message) for warning in caught)
    assert _leaks([*planted["a1"].values, "2011-03-28"], [said], b"") == []
    assert clean.StudyDate == "", "an unreadable date is emptied, not kept"


def test_real_dicoms_deidentify_and_still_decode(data_dir, deid):
    path = data_dir / "dicom" / "nema-rg1" / "RG1_J2KI.dcm"
    original = read_dicom(path)
    clean = deid(original, origin=str(path))
    for keyword in ("OtherPatientIDs", "InstitutionalDepartmentName", "StudyDescription", "ImageComments",
                    "DerivationDescription", "PatientBirthDate", "TimezoneOffsetFromUTC"):
        assert keyword not in clean, keyword
    assert clean.InstitutionName != original.InstitutionName and clean.StationName != original.StationName
    assert clean.SourceImageSequence[0].ReferencedSOPInstanceUID == deid.replace_uid(
        original.SourceImageSequence[0].ReferencedSOPInstanceUID
    )
    np.testing.assert_array_equal(to_radiograph(clean).pixels, to_radiograph(original).pixels)
