"""Hostile and malformed DICOM (issue 18): every input decodes to a valid radiograph or raises the clear error.

The fuzz test runs the strategies of ``reliability/hostile_images.py`` (real files from the data dir, mutated) with
a few dozen examples; the tests after it pin each limit and each refusal to its message.
"""

from __future__ import annotations

import copy
import io
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless

from medrag.config import LimitsConfig
from medrag.imaging.radiograph import (
    DEFAULT_LIMITS,
    DicomReadError,
    NotARadiograph,
    check_pixel_format,
    check_radiograph,
    modality_image,
    read_dicom,
    to_radiograph,
)
from reliability.hostile_images import (
    Seed,
    _dicom_bytes,
    _raw,
    decode_dicom,
    deep_sequence,
    dicom_seeds,
    guarded,
    hostile_dicom,
)


@pytest.fixture(scope="module")
def seeds(data_dir: Path) -> list[Seed]:
    return dicom_seeds(data_dir)


@pytest.fixture(scope="module")
def nih(data_dir: Path) -> tuple[Path, Dataset]:
    """The real NIH DX radiograph: 1024 x 1024, 8-bit, implicit VR, native pixels."""
    path = next((data_dir / "dicom" / "nih-dx").glob("*.dcm"))
    return path, read_dicom(path)


@settings(max_examples=50, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_fuzzed_dicoms_decode_or_raise_the_clear_error(seeds, data):
    description, payload = data.draw(hostile_dicom(seeds), label="case")
    with guarded(description, DEFAULT_LIMITS):
        assert decode_dicom(payload, DEFAULT_LIMITS, description) in ("decoded", "refused")


def _file(dataset: Dataset, tmp_path: Path, name: str = "hostile.dcm") -> Path:
    path = tmp_path / name
    path.write_bytes(_dicom_bytes(dataset, dataset.file_meta.TransferSyntaxUID))
    return path


def _variant(dataset: Dataset, **attributes: object) -> Dataset:
    changed = copy.deepcopy(dataset)
    for keyword, value in attributes.items():
        setattr(changed, keyword, value)
    return changed


def test_a_declared_size_above_the_pixel_limit_is_refused_before_decoding(nih, tmp_path):
    _, dataset = nih
    path = _file(_variant(dataset, Rows=65535, Columns=65535), tmp_path)
    read = read_dicom(path)  # the header alone is harmless
    with pytest.raises(DicomReadError, match="max_image_pixels") as error:
        to_radiograph(read)
    assert str(path) in str(error.value) and "4,294,836,225" in str(error.value)
    small = LimitsConfig(max_image_pixels=1000)
    with pytest.raises(DicomReadError, match="MEDRAG_LIMITS_MAX_IMAGE_PIXELS"):
        modality_image(dataset, small)  # the real image, under a limit set in the config
    with pytest.raises(DicomReadError, match="no pixels"):
        to_radiograph(read_dicom(_file(_variant(dataset, Rows=0), tmp_path)))


def test_files_above_the_size_limit_are_refused_before_parsing(nih):
    path, _ = nih
    assert path.stat().st_size > 2**20
    tight = LimitsConfig(max_image_mb=1)
    with pytest.raises(DicomReadError, match=r"larger than 1 MB.*max_image_mb") as error:
        read_dicom(path, tight)
    assert str(path) in str(error.value)
    stream = io.BytesIO(path.read_bytes())
    stream.name = "upload.dcm"
    with pytest.raises(DicomReadError, match=r"upload\.dcm: the file is larger than 1 MB"):
        read_dicom(stream, tight)
    assert read_dicom(path).Rows == 1024  # the default limit takes it


def test_sequences_nested_beyond_the_limit_are_refused(nih):
    path, _ = nih
    limit = DEFAULT_LIMITS.max_dicom_depth
    at_limit = _stream(path.read_bytes() + deep_sequence(limit, False, implicit=True), "deep16.dcm")
    assert len(read_dicom(at_limit).ReferencedImageSequence) == 1
    for depth, undefined in ((limit + 1, False), (60, True), (3000, True), (3000, False)):
        deep = _stream(path.read_bytes() + deep_sequence(depth, undefined, implicit=True), f"deep{depth}.dcm")
        with pytest.raises(DicomReadError, match=f"deep{depth}.dcm: DICOM sequences nest deeper than 16 levels"):
            read_dicom(deep)


def _stream(data: bytes, name: str) -> io.BytesIO:
    stream = io.BytesIO(data)
    stream.name = name
    return stream


def test_a_lying_length_field_is_a_read_error(nih, tmp_path):
    path, _ = nih
    data = bytearray(path.read_bytes())
    rows = pydicom.dcmread(path).get_item(0x00280010).value_tell  # implicit VR: the 4-byte length precedes it
    data[rows - 4:rows] = (0xFFFFFFF0).to_bytes(4, "little")
    lying = tmp_path / "lying.dcm"
    lying.write_bytes(bytes(data))
    with pytest.raises(DicomReadError) as error:
        to_radiograph(read_dicom(lying))
    assert str(lying) in str(error.value) and "export" in str(error.value)


def test_colour_and_palette_are_not_radiographs_and_odd_bit_depths_are_refused(nih, tmp_path):
    _, dataset = nih
    pixels = dataset.pixel_array
    rgb = _variant(dataset, PhotometricInterpretation="RGB", SamplesPerPixel=3, PlanarConfiguration=0,
                   PixelData=np.repeat(pixels[..., None], 3, axis=2).tobytes())
    for colour in (rgb, _variant(dataset, PhotometricInterpretation="PALETTE COLOR")):
        with pytest.raises(NotARadiograph, match="colour image"):
            to_radiograph(colour)  # refused by the decoder itself, not only by check_radiograph
    wide = _variant(dataset, BitsAllocated=32, BitsStored=32, HighBit=31,
                    PixelData=pixels.astype(np.uint32).tobytes())
    with pytest.raises(DicomReadError, match=r"32 bits stored in 32 allocated.*16-bit MONOCHROME2"):
        to_radiograph(wide)
    with pytest.raises(DicomReadError, match="17 bits stored in 16 allocated"):
        check_pixel_format(_variant(dataset, BitsAllocated=16, BitsStored=17), origin="x.dcm")
    deep = _variant(dataset, BitsAllocated=16, BitsStored=12, HighBit=11,
                    PixelData=(pixels.astype(np.uint16) * 16).tobytes())
    np.testing.assert_allclose(to_radiograph(deep).pixels, to_radiograph(dataset).pixels, atol=1e-6)


def test_counts_and_slopes_that_are_not_numbers_are_read_errors(nih, tmp_path):
    _, dataset = nih
    frames = copy.deepcopy(dataset)
    frames[0x00280008] = _raw("NumberOfFrames", "IS", b"abc")
    read = read_dicom(_file(frames, tmp_path, "frames.dcm"))
    with pytest.raises(DicomReadError, match="NumberOfFrames is 'abc', not a count") as error:
        check_radiograph(read)
    assert type(error.value) is DicomReadError and "frames.dcm" in str(error.value)
    steep = _variant(dataset, RescaleSlope="1e308", RescaleIntercept="0", RescaleType="US")
    with pytest.raises(DicomReadError, match=r"RescaleSlope 1e308.*out of range"):
        to_radiograph(steep)


def test_a_transfer_syntax_that_does_not_match_the_pixels_is_a_decode_error(nih, tmp_path):
    _, dataset = nih
    path = tmp_path / "mislabelled.dcm"
    path.write_bytes(_dicom_bytes(dataset, JPEG2000Lossless, dataset.file_meta.TransferSyntaxUID))
    read = read_dicom(path)
    assert read.file_meta.TransferSyntaxUID == JPEG2000Lossless
    with pytest.raises(DicomReadError, match="cannot be decoded") as error:
        to_radiograph(read)
    assert str(path) in str(error.value)


def test_truncation_at_any_offset_of_a_compressed_file_is_a_read_error(seeds):
    jpeg = next(seed for seed in seeds if pydicom.dcmread(io.BytesIO(seed.data)).file_meta.TransferSyntaxUID
                .is_compressed)
    for keep in (0, 100, 131, 132, 300, len(jpeg.data) // 2, len(jpeg.data) - 4000):
        assert decode_dicom(jpeg.data[:keep], DEFAULT_LIMITS, f"cut{keep}.dcm") == "refused", keep
    assert decode_dicom(jpeg.data, DEFAULT_LIMITS, "whole.dcm") == "decoded"


def test_an_element_of_unknown_vr_at_the_end_is_a_read_error(nih, tmp_path):
    """Found by atheris: the truncation check converted the last element, and pydicom raised NotImplementedError."""
    header = Dataset()
    header.file_meta = copy.deepcopy(nih[1].file_meta)
    header.Modality = "DX"
    path = tmp_path / "unknown_vr.dcm"
    path.write_bytes(_dicom_bytes(header, ExplicitVRLittleEndian)
                     + struct.pack("<HH", 0x0018, 0x6000) + b"D\x00" + struct.pack("<H", 2) + b"12")
    with pytest.raises(DicomReadError, match="corrupt DICOM") as error:
        read_dicom(path)
    assert str(path) in str(error.value)


def test_a_nan_window_or_a_short_voi_lut_falls_back_to_a_valid_image(nih, caplog):
    _, dataset = nih
    expected = to_radiograph(dataset).pixels  # no window in the header: min-max
    nan_window = copy.deepcopy(dataset)
    nan_window[0x00281050] = _raw("WindowCenter", "DS", b"nan")
    nan_window[0x00281051] = _raw("WindowWidth", "DS", b"400")
    np.testing.assert_array_equal(to_radiograph(nan_window).pixels, expected)
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 16]  # 4096 entries declared, 8 given
    lut.add_new("LUTData", "OW", bytes(16))
    short = _variant(dataset, VOILUTSequence=[lut])
    np.testing.assert_array_equal(to_radiograph(short).pixels, expected)
    assert "VOI LUT unusable (error)" in caplog.text
