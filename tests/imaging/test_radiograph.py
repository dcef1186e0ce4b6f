"""Radiograph decoding and normalisation on the real DICOMs in shared data (and encodings made from them)."""

from __future__ import annotations

import copy
import os
import pickle
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
import pytest
import torch
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.pixels import apply_windowing
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)

from medrag.imaging.radiograph import (
    DicomReadError,
    ImageReadError,
    NotARadiograph,
    Radiograph,
    check_radiograph,
    load_image_file,
    modality_image,
    model_input,
    read_dicom,
    to_radiograph,
    window,
)

RG1 = ("RG1_UNCR", "RG1_J2KR", "RG1_UNCI", "RG1_J2KI")


def _one(folder: Path) -> Path:
    (path,) = sorted(folder.glob("*.dcm"))
    return path


@pytest.fixture(scope="module")
def dicom_dir(data_dir: Path) -> Path:
    return data_dir / "dicom"


@pytest.fixture(scope="module")
def rg1(dicom_dir: Path) -> dict[str, Dataset]:
    """NEMA WG04 RG1: one 15-bit MONOCHROME1 chest CR, uncompressed and JPEG 2000 lossless/lossy."""
    return {name: read_dicom(dicom_dir / "nema-rg1" / f"{name}.dcm") for name in RG1}


@pytest.fixture(scope="module")
def rg1_pixels(rg1: dict[str, Dataset]) -> dict[str, np.ndarray]:
    return {name: to_radiograph(dataset).pixels for name, dataset in rg1.items()}


@pytest.fixture(scope="module")
def nih(dicom_dir: Path) -> Dataset:
    return read_dicom(_one(dicom_dir / "nih-dx"))


def _real_dicoms(dicom_dir: Path) -> list[Path]:
    return [dicom_dir / "nema-rg1" / f"{name}.dcm" for name in RG1] + [
        _one(dicom_dir / "siim-cr"), _one(dicom_dir / "nih-dx")
    ]


def _regions(pixels: np.ndarray) -> dict[str, float]:
    """Mean brightness of the two lung fields and the mediastinum of a PA chest film."""
    h, w = pixels.shape

    def mean(r0: float, r1: float, c0: float, c1: float) -> float:
        return float(pixels[int(h * r0):int(h * r1), int(w * c0):int(w * c1)].mean())

    return {"right_lung": mean(0.2, 0.45, 0.15, 0.35), "left_lung": mean(0.2, 0.45, 0.62, 0.82),
            "mediastinum": mean(0.2, 0.45, 0.45, 0.55)}


def _lungs_dark(pixels: np.ndarray) -> bool:
    regions = _regions(pixels)
    return max(regions["right_lung"], regions["left_lung"]) < regions["mediastinum"] - 0.15


def test_every_real_dicom_decodes_to_a_normalised_radiograph(dicom_dir):
    for path in _real_dicoms(dicom_dir):
        dataset = read_dicom(path)
        check_radiograph(dataset)
        image = to_radiograph(dataset)
        assert image.pixels.dtype == np.float32
        assert image.pixels.shape == (dataset.Rows, dataset.Columns), path.name
        assert image.pixels.min() >= 0.0 and image.pixels.max() <= 1.0
        assert image.pixels.std() > 0.1, f"{path.name}: no contrast left"
        assert _lungs_dark(image.pixels), f"{path.name}: lungs should be darker than the mediastinum"
        assert image.metadata["modality"] in ("CR", "DX")
        assert image.metadata["rows"] == dataset.Rows and image.metadata["columns"] == dataset.Columns


def test_rg1_encodings_give_the_same_image(rg1_pixels):
    assert np.array_equal(rg1_pixels["RG1_UNCR"], rg1_pixels["RG1_J2KR"]), "JPEG 2000 lossless must be exact"
    assert np.array_equal(rg1_pixels["RG1_UNCI"], rg1_pixels["RG1_J2KI"]), "UNCI is J2KI decompressed"
    lossy = np.abs(rg1_pixels["RG1_UNCR"] - rg1_pixels["RG1_J2KI"])
    assert lossy.mean() < 0.002 and lossy.max() < 0.1, "10:1 JPEG 2000 is close to the original"
    assert lossy.max() > 0, "the lossy encoding is not bit-identical"


def test_monochrome1_is_inverted(rg1, rg1_pixels):
    dataset = rg1["RG1_UNCR"]
    assert dataset.PhotometricInterpretation == "MONOCHROME1"
    image = modality_image(dataset)
    assert image.inverted
    stored_polarity = window(image.values, image.center, image.width)
    assert not _lungs_dark(stored_polarity), "in MONOCHROME1 the air in the lungs has high values"
    np.testing.assert_allclose(rg1_pixels["RG1_UNCR"], 1.0 - stored_polarity, atol=1e-6)


def test_metadata_is_non_identifying_and_drops_zero_spacing(rg1, dicom_dir):
    metadata = to_radiograph(rg1["RG1_UNCR"]).metadata
    assert metadata == {"modality": "CR", "view_position": "PA", "body_part": "CHEST", "laterality": None,
                        "rows": 1955, "columns": 1841, "pixel_spacing": None,  # the file says 0.000 x 0.000
                        "manufacturer": "Philips Medical Systems"}
    siim = to_radiograph(read_dicom(_one(dicom_dir / "siim-cr"))).metadata
    assert siim["pixel_spacing"] == [0.168, 0.168]


def test_window_matches_pydicom_windowing(rg1):
    """The hand-written window() is PS3.3's function: pydicom's, scaled from the stored range to [0, 1]."""
    dataset = rg1["RG1_UNCR"]
    values = modality_image(dataset).values
    for center, width in ((15000, 30000), (9000, 4000), (20000, 1)):
        probe = Dataset()
        probe.update({"PhotometricInterpretation": "MONOCHROME2", "BitsStored": 15, "PixelRepresentation": 0,
                      "WindowCenter": center, "WindowWidth": width})
        expected = apply_windowing(values.astype(np.float64), probe) / (2**15 - 1)
        np.testing.assert_allclose(window(values, center, width), expected, atol=1e-5)


def test_rewindowing_and_default_window(rg1, rg1_pixels):
    image = modality_image(rg1["RG1_UNCR"])
    assert (image.center, image.width, image.function) == (15000.0, 30000.0, "LINEAR")
    np.testing.assert_array_equal(image.windowed(), rg1_pixels["RG1_UNCR"])
    narrow = image.windowed(center=12000, width=6000)
    assert narrow.std() > image.windowed().std(), "a narrower window gives more contrast"
    with pytest.raises(ValueError, match="width"):
        window(image.values, 100, 0)


def _copy_with(dataset: Dataset, **attributes) -> Dataset:
    copied = copy.deepcopy(dataset)
    for keyword, value in attributes.items():
        setattr(copied, keyword, value)
    return copied


def test_rescale_is_applied_and_min_max_is_the_fallback(nih):
    raw = nih.pixel_array.astype(np.float32)
    rescaled = modality_image(_copy_with(nih, RescaleSlope=2, RescaleIntercept=-100, RescaleType="US"))
    np.testing.assert_array_equal(rescaled.values, raw * 2 - 100)
    pixels = to_radiograph(nih).pixels  # no window in the header: min-max
    assert pixels.min() == 0.0 and pixels.max() == 1.0
    np.testing.assert_allclose(pixels, (raw - raw.min()) / (raw.max() - raw.min()), atol=1e-6)


def test_voi_lut_table_is_applied(nih):
    lut = Dataset()
    lut.LUTDescriptor = [256, 0, 8]
    lut.LUTData = list(range(255, -1, -1))  # a table that inverts
    table = _copy_with(nih, VOILUTSequence=[lut], WindowCenter=10, WindowWidth=5)
    raw = nih.pixel_array.astype(np.float32)
    np.testing.assert_allclose(to_radiograph(table).pixels, (255 - raw) / 255, atol=1e-6)


def test_unusable_voi_lut_falls_back_to_the_window(nih, caplog):
    lut = Dataset()
    lut.LUTDescriptor = [256, 0, 9]  # 9 bits per entry: not allowed by PS3.3 C.11.2.1.1
    lut.LUTData = list(range(256))
    broken = _copy_with(nih, VOILUTSequence=[lut], WindowCenter=100, WindowWidth=50)
    expected = window(nih.pixel_array, 100, 50)
    np.testing.assert_array_equal(to_radiograph(broken).pixels, expected)
    assert "VOI LUT unusable" in caplog.text and str(nih.filename) in caplog.text


def _encoded(source: Dataset, pixels: np.ndarray, syntax: UID, path: Path) -> Path:
    """A small DICOM of ``pixels`` (16-bit, 15 stored, MONOCHROME1 like RG1) in ``syntax``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = source.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    for keyword in ("Modality", "PhotometricInterpretation", "BitsAllocated", "BitsStored", "HighBit",
                    "PixelRepresentation", "SamplesPerPixel", "WindowCenter", "WindowWidth"):
        setattr(ds, keyword, source[keyword].value)
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelData = pixels.tobytes()
    if syntax == JPEGLosslessSV1:  # pydicom has no JPEG lossless encoder; libjpeg-turbo via imagecodecs has
        stream = imagecodecs.jpeg8_encode(pixels, lossless=True, predictor=1, bitspersample=int(ds.BitsStored))
        ds.PixelData = encapsulate([stream])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = syntax
    elif syntax != ExplicitVRLittleEndian:
        ds.compress(syntax)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEGLosslessSV1, JPEG2000Lossless],
                         ids=lambda syntax: syntax.name)
def test_lossless_encodings_round_trip(rg1, tmp_path, syntax):
    source = rg1["RG1_UNCR"]
    crop = np.ascontiguousarray(source.pixel_array[800:1056, 600:856])
    plain = to_radiograph(read_dicom(_encoded(source, crop, ExplicitVRLittleEndian, tmp_path / "plain.dcm")))
    dataset = read_dicom(_encoded(source, crop, syntax, tmp_path / "encoded.dcm"))
    assert dataset.file_meta.TransferSyntaxUID == syntax
    np.testing.assert_array_equal(dataset.pixel_array, crop)
    np.testing.assert_array_equal(to_radiograph(dataset).pixels, plain.pixels)


def _truncated(source: Path, keep: int, path: Path) -> Path:
    path.write_bytes(source.read_bytes()[:keep])
    return path


def test_truncated_files_are_read_errors(dicom_dir, tmp_path):
    native, jpeg = _one(dicom_dir / "nih-dx"), _one(dicom_dir / "siim-cr")
    cases = {
        "pixels": _truncated(native, native.stat().st_size // 2, tmp_path / "cut_pixels.dcm"),
        "fragments": _truncated(jpeg, jpeg.stat().st_size - 4000, tmp_path / "cut_fragments.dcm"),
        "header": _truncated(jpeg, 420, tmp_path / "cut_header.dcm"),
    }
    for path in cases.values():
        with pytest.raises(DicomReadError, match="truncated") as error:
            read_dicom(path)
        assert str(path) in str(error.value)


def test_non_dicom_and_missing_files_are_read_errors(tmp_path):
    noise = tmp_path / "noise.dcm"
    noise.write_bytes(np.random.default_rng(7).bytes(4096))
    with pytest.raises(DicomReadError, match="not a DICOM file") as error:
        read_dicom(noise)
    assert str(noise) in str(error.value)
    with pytest.raises(DicomReadError, match="cannot open") as error:
        read_dicom(tmp_path / "absent.dcm")
    assert "absent.dcm" in str(error.value)


def test_undecodable_pixel_data_is_a_read_error(dicom_dir, tmp_path):
    source = _one(dicom_dir / "siim-cr")
    dataset = pydicom.dcmread(source)
    dataset.PixelData = encapsulate([b"\xff\xd8" + os.urandom(2000) + b"\xff\xd9"])
    path = tmp_path / "garbled.dcm"
    dataset.save_as(path)
    with pytest.raises(DicomReadError, match="cannot be decoded") as error:
        to_radiograph(read_dicom(path))
    assert str(path) in str(error.value)


def _structured_report(path: Path) -> Path:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = UID("1.2.840.10008.5.1.4.1.1.88.11")  # Basic Text SR
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Modality = "SR"
    ds.ValueType = "CONTAINER"
    text = Dataset()
    text.RelationshipType, text.ValueType, text.TextValue = "CONTAINS", "TEXT", "No acute cardiopulmonary process."
    ds.ContentSequence = [text]
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def test_non_radiographs_are_rejected_with_a_reason(nih, tmp_path):
    report = read_dicom(_structured_report(tmp_path / "report.dcm"))
    cases = {
        "SR object": report,
        "modality CT": _copy_with(nih, Modality="CT"),
        "2 frames": _copy_with(nih, NumberOfFrames=2),
        "colour image": _copy_with(nih, PhotometricInterpretation="RGB", SamplesPerPixel=3),
    }
    for reason, dataset in cases.items():
        with pytest.raises(NotARadiograph, match=reason) as error:
            check_radiograph(dataset, origin="case-17.dcm")
        assert "case-17.dcm" in str(error.value) and error.value.reason
    with pytest.raises(NotARadiograph, match=r"report\.dcm"):
        check_radiograph(report)  # without an origin, the file it was read from
    no_pixels = _copy_with(nih)
    del no_pixels.PixelData
    with pytest.raises(NotARadiograph, match="no pixel data"):
        check_radiograph(no_pixels, origin="x.dcm")
    check_radiograph(_copy_with(nih, Modality="OT"), modalities=("OT",))
    reason = NotARadiograph("a.dcm", "modality CT")
    copied = pickle.loads(pickle.dumps(reason))  # a process pool sends it back to the pipeline
    assert (copied.origin, copied.reason, str(copied)) == ("a.dcm", "modality CT", str(reason))


@pytest.fixture(scope="module")
def covid_jpeg(data_dir: Path) -> Path:
    """A real 512 x 420 chest radiograph JPEG (not square, so padding shows)."""
    return sorted((data_dir / "cxr" / "covid" / "images").glob("*.jpg"))[0]


def test_load_image_file_grey_colour_and_16_bit(covid_jpeg, tmp_path):
    image = load_image_file(covid_jpeg)
    expected = np.asarray(Image.open(covid_jpeg).convert("L"), dtype=np.float32) / 255
    np.testing.assert_array_equal(image.pixels, expected)
    assert image.pixels.dtype == np.float32
    assert (image.metadata["rows"], image.metadata["columns"]) == expected.shape
    assert image.metadata["modality"] is None

    rgb = tmp_path / "colour.png"
    Image.open(covid_jpeg).convert("RGB").save(rgb)
    np.testing.assert_allclose(load_image_file(rgb).pixels, expected, atol=1 / 255)

    deep = tmp_path / "deep.png"
    Image.fromarray((expected * 65535).astype(np.uint16)).save(deep)
    np.testing.assert_allclose(load_image_file(deep).pixels, expected, atol=1e-4)


def test_unreadable_image_files(covid_jpeg, tmp_path):
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(covid_jpeg.read_bytes()[:3000])
    noise = tmp_path / "noise.png"
    noise.write_bytes(np.random.default_rng(3).bytes(3000))
    for path in (cut, noise, tmp_path / "absent.png"):
        with pytest.raises(ImageReadError) as error:
            load_image_file(path)
        assert str(path) in str(error.value)


def test_model_input_keeps_aspect_in_a_square_tensor(covid_jpeg):
    image = load_image_file(covid_jpeg)
    assert image.pixels.shape == (420, 512)
    tensor = model_input(image, size=64)
    assert type(tensor) is torch.Tensor and tensor.dtype == torch.float32
    assert tensor.shape == (3, 64, 64)
    assert torch.equal(tensor[0], tensor[1]) and torch.equal(tensor[0], tensor[2])
    assert tensor.min() >= 0.0 and tensor.max() <= 1.0
    rows = tensor[0].amax(dim=1)
    assert rows[0] == 0 and rows[-1] == 0 and rows[32] > 0.5, "the shorter side is padded, centred"
    square = model_input(Radiograph(np.linspace(0, 0.5, 100 * 100, dtype=np.float32).reshape(100, 100), {}), 32)
    assert square.min() < 0.05 and square.max() > 0.95, "an image spanning [0, 0.5] is scaled to [0, 1]"
