"""A request is de-identified before anything sees it: DICOM header, the note, the question."""

from __future__ import annotations

import copy
import io

import pydicom
import pytest
from phi_dicom import load_templates, make_phi_dicom

from knowledge_sources import DEMO_DIR
from medrag.deid.dicom import DicomDeidentifier
from medrag.imaging.radiograph import DicomReadError, ImageReadError, NotARadiograph
from medrag.pipeline.prepare import QueryPreparer

COVID_IMAGE = DEMO_DIR / "covid" / "images" / "12941_2020_358_Fig1_HTML.jpg"


@pytest.fixture(scope="module")
def prepare() -> QueryPreparer:
    return QueryPreparer(DicomDeidentifier(b"query-input-test-key"))


@pytest.fixture(scope="module")
def planted(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("query") / "study.dcm"
    return make_phi_dicom(COVID_IMAGE, load_templates(data_dir, 1)[0], out, seed=3)


def test_a_dicom_request_is_de_identified_with_its_note(prepare, planted):
    family, given = planted.values[0].split("^")[:2]
    note = f"{given} {family} has had a fever for three days; phone {planted.values[4]}."
    request = prepare(question="Is there consolidation?", note=note, image=planted.path)
    assert request.image is not None and request.image.pixels.ndim == 2
    assert family not in request.note and given not in request.note
    assert "fever for three days" in request.note
    assert request.scrubbed["[NAME]"] == 2 and request.scrubbed["[PHONE]"] == 1
    header = str(request.dicom)
    for value in planted.values[:3]:
        assert value.split("^")[0] not in header
    assert str(request.dicom.PatientIdentityRemoved) == "YES"


def test_bytes_and_datasets_work_like_files_and_the_callers_dataset_is_untouched(prepare, planted):
    from_file = prepare(image=planted.path)
    from_bytes = prepare(image=planted.path.read_bytes())
    original = pydicom.dcmread(planted.path)
    kept = copy.deepcopy(original)
    from_dataset = prepare(image=original)
    assert from_bytes.dicom.SOPInstanceUID == from_file.dicom.SOPInstanceUID == from_dataset.dicom.SOPInstanceUID
    assert (from_bytes.image.pixels == from_file.image.pixels).all()
    assert original == kept


def test_png_and_jpeg_requests(prepare):
    from_path = prepare(note="cough", image=COVID_IMAGE)
    from_bytes = prepare(note="cough", image=COVID_IMAGE.read_bytes())
    assert from_path.dicom is None and from_path.image.pixels.shape == from_bytes.image.pixels.shape


def test_bad_requests_say_what_to_fix(prepare, planted, tmp_path):
    with pytest.raises(ValueError, match="empty query"):
        prepare(question="  ", note="")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        prepare(image=tmp_path / "missing.dcm")
    with pytest.raises(ImageReadError, match="not a readable PNG/JPEG"):
        prepare(image=b"certainly not an image")
    truncated = planted.path.read_bytes()[:2000]
    with pytest.raises(DicomReadError):
        prepare(image=truncated)
    ct = pydicom.dcmread(planted.path)
    ct.Modality = "CT"
    buffer = io.BytesIO()
    ct.save_as(buffer)
    with pytest.raises(NotARadiograph):
        prepare(image=buffer.getvalue())
