"""Hostile images: property-based fuzzing of the DICOM and PNG/JPEG decoders (issue 18).

The property, for every input: :mod:`medrag.imaging.radiograph` either returns a valid radiograph (H x W float32,
finite, in [0, 1], the declared size) or raises its clear error (:class:`DicomReadError` / :class:`NotARadiograph`
for DICOM, :class:`ImageReadError` for PNG/JPEG) naming the file; never another exception type, never a hang,
and never more memory than the limits allow. Inputs start from the real DICOMs and chest radiograph JPEGs of
``../shared/data`` and are mutated the ways a broken export or an attacker would: cut at any offset, bytes
flipped, length fields overwritten with huge values, Rows/Columns set to 65535, sequences nested deep, a transfer
syntax that does not match the pixel bytes, RGB / palette / 1- to 64-bit variants, garbage numbers where counts
and slopes belong; for PNG/JPEG random bytes and headers that declare huge dimensions.

hypothesis drives it (shrinking a failure to its smallest input); the tests in ``tests/imaging`` run the same
strategies with a few dozen examples. atheris (coverage-guided, libFuzzer) installs from its wheel and was run by
hand over the same seeds while this was written: it found one crash the strategies had not (listed below), but at
2 to 5 cases a second on a shared 2-core machine it is a campaign to run for hours, not a suite area.
"""

from __future__ import annotations

import contextlib
import copy
import io
import signal
import struct
import threading
import time
import tracemalloc
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.tag import Tag
from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    RLELossless,
)

from medrag.config import Config, LimitsConfig
from medrag.imaging.radiograph import (
    DicomReadError,
    ImageReadError,
    NotARadiograph,
    Radiograph,
    check_radiograph,
    load_image_file,
    read_dicom,
    to_radiograph,
)
from reliability import register_suite

CASE_SECONDS = 20.0
"""CPU seconds one case may take before it counts as a hang (the slowest real file, JPEG 2000 1955 x 1841, takes
under a second). CPU, not wall-clock, time: on a shared machine a case can wait longer than that for a core."""

CRASHES_FOUND_AND_FIXED = (
    "A 4-byte length field overwritten with 0xFFFFFFF0 in a 1 MB file: read_dicom allocated 4,096 MB (pydicom's "
    "read(length) on a file object allocates the length up front) before reporting truncation. Files are now read "
    "in 1 MB chunks up to max_image_mb and parsed from memory: 2 MB.",
    "A 4 kB JPEG-LS DICOM whose Rows x Columns were raised: 512 MB allocated before the decoder failed. The "
    "declared pixel count is checked against max_image_pixels before decoding.",
    "RescaleSlope with a flipped byte: numpy's UFuncTypeError escaped modality_image unwrapped.",
    "RescaleSlope / RescaleIntercept NaN, inf or 1e308: NaN / inf pixels returned as a valid radiograph.",
    "WindowCenter NaN: NaN pixels (the header window was used as it was); a non-finite window is now ignored.",
    "VOI LUT Data shorter than its LUT Descriptor: struct.error escaped the fallback, which caught five other types.",
    "NumberOfFrames 'abc': check_radiograph raised a bare ValueError from int() naming neither file nor fix.",
    "RGB pixel data: to_radiograph returned an H x W x 3 'radiograph'; PALETTE COLOR and 32-bit pixels decoded "
    "without complaint; BitsAllocated 1 gave an 8 x H x W array (264 MB). Refused before decoding now.",
    "(atheris) An element of unknown VR last in a cut file: the truncation check converted it and pydicom's "
    "NotImplementedError escaped read_dicom.",
    "PNGs of a few kB declaring 1 x 50,000,000 and 8,000 x 6,000 pixels (under Pillow's own 89 M bomb limit) "
    "were decompressed: 380 MB and up to 108 s each. The declared size is checked against max_image_pixels first.",
)
"""What the fuzzers found in medrag/imaging as it was before issue 18 (each reproduced on that code), fixed there.
Hardening beyond them: sequence depth, PNG/JPEG only (no TIFF, BMP, ...), every element converted in read_dicom."""


class Crash(AssertionError):
    """An input broke the property: another exception type, an invalid image, a hang or too much memory."""


# ---- DICOM ------------------------------------------------------------------------------------------------------


class Seed:
    """A real file (or a small re-encoding of one) that mutations start from.

    A plain class, not a dataclass: hypothesis prints a dataclass field by field, megabytes of bytes in every
    report, and this repr instead."""

    def __init__(self, name: str, data: bytes) -> None:
        self.name = name
        self.data = data

    def __repr__(self) -> str:
        return f"Seed({self.name!r}, {len(self.data):,} bytes)"


def dicom_seeds(data_dir: Path, whole: bool = False) -> list[Seed]:
    """The real radiographs of ``data_dir/dicom`` (JPEG baseline SIIM, implicit-VR NIH) and 48 x 40 crops of
    NEMA RG1 re-encoded native, RLE, JPEG-LS and JPEG 2000 (every decoder, at fuzzing speed); ``whole`` adds the
    full RG1 files (7 MB native, JPEG 2000 lossy)."""
    folder = data_dir / "dicom"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} not found; set MEDRAG_DATA_DIR to the shared data folder")
    paths = [next((folder / "siim-cr").glob("*.dcm")), next((folder / "nih-dx").glob("*.dcm"))]
    if whole:
        paths += [folder / "nema-rg1" / "RG1_UNCR.dcm", folder / "nema-rg1" / "RG1_J2KI.dcm"]
    seeds = [Seed(path.name, path.read_bytes()) for path in paths]
    rg1 = pydicom.dcmread(folder / "nema-rg1" / "RG1_UNCR.dcm")
    crop = np.ascontiguousarray(rg1.pixel_array[900:948, 700:740])
    rg1.Rows, rg1.Columns = crop.shape
    rg1.PixelData = crop.tobytes()
    for syntax in (ExplicitVRLittleEndian, RLELossless, JPEGLSLossless, JPEG2000Lossless):
        small = copy.deepcopy(rg1)  # compress() changes the file meta too
        if syntax != ExplicitVRLittleEndian:
            small.compress(syntax)
        seeds.append(Seed(f"rg1-crop-{syntax.name}.dcm", _dicom_bytes(small, small.file_meta.TransferSyntaxUID)))
    return seeds


def _dicom_bytes(dataset: Dataset, meta_syntax: UID, body_syntax: UID | None = None) -> bytes:
    """A Part 10 file whose meta header names ``meta_syntax`` and whose body is encoded in ``body_syntax``
    (the same by default): written by hand because dcmwrite refuses the mismatch a hostile file has."""
    body_syntax = body_syntax or meta_syntax
    meta = FileMetaDataset(dataset.file_meta) if hasattr(dataset, "file_meta") else FileMetaDataset()
    meta.TransferSyntaxUID = meta_syntax
    meta.setdefault("MediaStorageSOPClassUID", dataset.get("SOPClassUID", "1.2.840.10008.5.1.4.1.1.1"))
    meta.setdefault("MediaStorageSOPInstanceUID", dataset.get("SOPInstanceUID", "1.2.3.4"))
    out = DicomBytesIO()
    out.write(bytes(128) + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    out.is_little_endian = body_syntax != ExplicitVRBigEndian
    out.is_implicit_VR = body_syntax == ImplicitVRLittleEndian
    body = Dataset(dataset)  # the elements without the file meta, so nothing checks them against meta_syntax
    item = b"\xfe\xff\x00\xe0" if out.is_little_endian else b"\xff\xfe\xe0\x00"
    if "PixelData" in body and (pixels := body["PixelData"]).is_undefined_length and bytes(pixels.value[:4]) != item:
        # a variant cut or replaced encapsulated data: written with its length, as a broken export would
        body["PixelData"] = DataElement(pixels.tag, pixels.VR, pixels.value, is_undefined_length=False)
    write_dataset(out, body)
    return out.getvalue()


def _raw(keyword: str, vr: str, value: bytes) -> RawDataElement:
    """An element written byte for byte as given (pydicom would refuse to set text where a number belongs)."""
    value += b" " * (len(value) % 2)
    tag = Tag(keyword)
    return RawDataElement(tag, vr, len(value), value, 0, False, True)


def deep_sequence(depth: int, undefined: bool, implicit: bool) -> bytes:
    """A Referenced Image Sequence element nested ``depth`` levels deep, as little-endian bytes to append to a file.

    Assembled here because pydicom's writer measures each level by writing it: a few hundred levels take it
    minutes, and an attacker's file has thousands."""
    item, delimiters = struct.pack("<HH", 0xFFFE, 0xE000), struct.pack("<HHIHHI", 0xFFFE, 0xE00D, 0, 0xFFFE, 0xE0DD, 0)
    element = b""
    for _ in range(depth):
        if undefined:
            length, value = 0xFFFFFFFF, item + struct.pack("<I", 0xFFFFFFFF) + element + delimiters
        else:
            value = item + struct.pack("<I", len(element)) + element
            length = len(value)
        vr = b"" if implicit else b"SQ\x00\x00"
        element = struct.pack("<HH", 0x0008, 0x1140) + vr + struct.pack("<I", length) + value
    return element


SYNTAXES = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian,
            JPEGBaseline8Bit, JPEGLSLossless, JPEG2000, JPEG2000Lossless, RLELossless, UID("1.2.3.4.5"))
COUNTS = (b"0", b"1", b"2", b"3", b"-1", b"abc", b"1\\2", b"99999999999", b"1.5", b"")
NUMBERS = (b"1e308", b"-1e308", b"nan", b"inf", b"0", b"-1", b"abc", b"1\\2", b"1e-300", b"")


@st.composite
def _header_variant(draw: st.DrawFn, dataset: Dataset) -> tuple[str, Dataset, UID | None]:
    """One header change a broken export or an attacker makes; the body syntax to write, if not the meta's."""
    changed = copy.deepcopy(dataset)
    kind = draw(st.sampled_from(("none", "size", "nested", "syntax", "colour", "bits", "counts", "rescale",
                                 "window", "pixels", "missing")))
    body: UID | None = None
    if kind == "size":
        changed.Rows = draw(st.sampled_from((0, 1, 2, 65535, 4096, dataset.Rows + 1)))
        changed.Columns = draw(st.sampled_from((0, 1, 65535, 6000, dataset.Columns)))
    elif kind == "syntax":  # the meta header lies about the body, or the pixel bytes' encoding
        body = dataset.file_meta.TransferSyntaxUID
        changed.file_meta.TransferSyntaxUID = draw(st.sampled_from(SYNTAXES))
        if draw(st.booleans()) and changed.file_meta.TransferSyntaxUID in (ExplicitVRLittleEndian,
                                                                          ImplicitVRLittleEndian):
            body = changed.file_meta.TransferSyntaxUID
    elif kind == "colour":
        changed.PhotometricInterpretation = draw(st.sampled_from(("RGB", "YBR_FULL", "PALETTE COLOR", "MONOCHROME3",
                                                                  "")))
        changed.SamplesPerPixel = draw(st.sampled_from((1, 3, 4)))
        changed.PlanarConfiguration = 0
        if draw(st.booleans()) and not dataset.file_meta.TransferSyntaxUID.is_compressed:
            changed.PixelData = bytes(dataset.PixelData) * changed.SamplesPerPixel
    elif kind == "bits":
        changed.BitsAllocated = draw(st.sampled_from((1, 8, 12, 16, 32, 64)))
        changed.BitsStored = draw(st.sampled_from((1, 8, 12, 15, 16, 32, 64)))
        changed.HighBit = max(changed.BitsStored - 1, 0)
        changed.PixelRepresentation = draw(st.sampled_from((0, 1, 2)))
        if draw(st.booleans()) and not dataset.file_meta.TransferSyntaxUID.is_compressed:
            dtype = {1: np.uint8, 8: np.uint8, 12: np.uint16, 16: np.uint16, 32: np.uint32, 64: np.float64}
            changed.PixelData = dataset.pixel_array.astype(dtype[changed.BitsAllocated]).tobytes()
    elif kind == "counts":
        keyword = draw(st.sampled_from(("NumberOfFrames", "SamplesPerPixel", "Rows", "BitsAllocated")))
        vr = "IS" if keyword == "NumberOfFrames" else "US"
        value = draw(st.sampled_from(COUNTS)) if vr == "IS" else draw(st.binary(min_size=0, max_size=6))
        changed[Tag(keyword)] = _raw(keyword, vr, value)
    elif kind == "rescale":
        changed[Tag("RescaleSlope")] = _raw("RescaleSlope", "DS", draw(st.sampled_from(NUMBERS)))
        changed[Tag("RescaleIntercept")] = _raw("RescaleIntercept", "DS", draw(st.sampled_from(NUMBERS)))
    elif kind == "window":
        changed[Tag("WindowCenter")] = _raw("WindowCenter", "DS", draw(st.sampled_from(NUMBERS)))
        changed[Tag("WindowWidth")] = _raw("WindowWidth", "DS", draw(st.sampled_from(NUMBERS)))
        changed.VOILUTFunction = draw(st.sampled_from(("LINEAR", "SIGMOID", "LINEAR_EXACT", "CUBIC")))
        if draw(st.booleans()):
            lut = Dataset()
            lut.LUTDescriptor = [draw(st.integers(0, 65535)), draw(st.integers(0, 65535)), draw(st.integers(0, 64))]
            table = draw(st.lists(st.integers(0, 65535), max_size=64))
            lut.add_new("LUTData", "OW", np.asarray(table, dtype=np.uint16).tobytes())
            changed.VOILUTSequence = [lut]
    elif kind == "pixels":  # the pixel data shorter or longer than the header says, or another stream's
        data = bytes(dataset.PixelData)
        cut = draw(st.integers(0, len(data)))
        changed.PixelData = data[:cut] if draw(st.booleans()) else data + bytes(cut % 4096)
    elif kind == "missing":
        keyword = draw(st.sampled_from(("Rows", "Columns", "BitsAllocated", "PhotometricInterpretation",
                                        "PixelData", "BitsStored", "Modality")))
        changed.pop(Tag(keyword), None)
    return kind, changed, body


def _length_fields(data: bytes) -> list[tuple[int, int]]:
    """(offset, size) of the top-level length fields in ``data`` and of the first items of encapsulated pixel
    data: the bytes a lying length overwrites."""
    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
    except Exception:  # a seed a header variant already broke: no length fields to lie with
        return []
    implicit = dataset.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    fields = []
    for tag in list(dataset.keys()):  # tags, not elements: iterating a Dataset converts values
        raw = dataset.get_item(tag)
        if not isinstance(raw, RawDataElement) or raw.value_tell is None:
            continue
        long = implicit or raw.VR in ("OB", "OD", "OF", "OL", "OV", "OW", "SQ", "UC", "UN", "UR", "UT", "SV", "UV")
        fields.append((raw.value_tell - 4, 4) if long else (raw.value_tell - 2, 2))
        if tag == 0x7FE00010 and raw.length == 0xFFFFFFFF:  # item headers of the fragments
            offset = raw.value_tell
            for _ in range(4):
                if offset + 8 > len(data):
                    break
                fields.append((offset + 4, 4))
                offset += 8 + struct.unpack_from("<I", data, offset + 4)[0]
    return fields


@st.composite
def hostile_dicom(draw: st.DrawFn, seeds: list[Seed]) -> tuple[str, bytes]:
    """A (description, file bytes) pair: a real seed with a header variant, then a byte-level mutation."""
    seed = draw(st.sampled_from(seeds))
    kind, changed, body = draw(_header_variant(_parsed(seed)))
    data = seed.data if kind in ("none", "nested") else _dicom_bytes(changed, changed.file_meta.TransferSyntaxUID,
                                                                      body)
    if kind == "nested":  # around the limit, and thousands deep (pydicom's reader recurses on undefined lengths)
        depth = draw(st.one_of(st.integers(1, 2 * LimitsConfig().max_dicom_depth), st.integers(100, 3000)))
        implicit = changed.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
        data += deep_sequence(depth, draw(st.booleans()), implicit)
    mutation = draw(st.sampled_from(("none", "truncate", "flip", "length")))
    if mutation == "truncate":
        data = data[:draw(st.integers(0, len(data)))]
    elif mutation == "flip":
        mutable = bytearray(data)
        for _ in range(draw(st.integers(1, 16))):
            offset = draw(st.integers(0, len(mutable) - 1))
            mutable[offset] ^= draw(st.integers(1, 255))
        data = bytes(mutable)
    elif mutation == "length" and (fields := _length_fields(data)):
        offset, size = draw(st.sampled_from(fields))
        value = draw(st.sampled_from((0xFFFFFFFF, 0xFFFFFFF0, 0x7FFFFFFF, 0x10000000, 0, 1, 3))) if size == 4 else \
            draw(st.sampled_from((0xFFFF, 0xFFFE, 0, 1, 3)))
        data = data[:offset] + value.to_bytes(size, "little") + data[offset + size:]
    return f"{seed.name} / header {kind} / bytes {mutation}", data


_PARSED: dict[str, Dataset] = {}


def _parsed(seed: Seed) -> Dataset:
    """The seed as a dataset, parsed once per process (the strategies change copies)."""
    if seed.name not in _PARSED:
        _PARSED[seed.name] = pydicom.dcmread(io.BytesIO(seed.data))
    return _PARSED[seed.name]


def _named(data: bytes, name: str) -> io.BytesIO:
    buffer = io.BytesIO(data)
    buffer.name = name
    return buffer


def _valid(image: Radiograph, rows: int, columns: int, name: str) -> None:
    pixels = image.pixels
    if pixels.dtype != np.float32 or pixels.shape != (rows, columns):
        raise Crash(f"{name}: decoded to {pixels.dtype} {pixels.shape}, not float32 {rows} x {columns}")
    if not np.isfinite(pixels).all() or pixels.min() < 0.0 or pixels.max() > 1.0:
        raise Crash(f"{name}: decoded pixels are not finite values in [0, 1]")


def decode_dicom(data: bytes, limits: LimitsConfig, name: str = "fuzzed.dcm") -> str:
    """``decoded`` or ``refused`` (a DicomReadError or NotARadiograph that names the file); a Crash otherwise.
    The path a query or an upload takes: read, check it is a radiograph, decode."""
    try:
        dataset = read_dicom(_named(data, name), limits)
        check_radiograph(dataset, origin=name)
        image = to_radiograph(dataset, limits)
    except (DicomReadError, NotARadiograph) as error:
        if name not in str(error):
            raise Crash(f"the error does not name the file: {error}") from error
        return "refused"
    except Exception as error:
        raise Crash(f"{name}: {type(error).__name__}: {error}") from error
    _valid(image, dataset.Rows, dataset.Columns, name)
    return "decoded"


# ---- PNG / JPEG -------------------------------------------------------------------------------------------------


def image_seeds(data_dir: Path) -> list[Seed]:
    """Two real chest radiograph JPEGs and PNGs made from one: greyscale, 16-bit, RGB, palette."""
    jpegs = sorted((data_dir / "cxr" / "covid" / "images").glob("*.jpg"))[:2]
    if not jpegs:
        raise FileNotFoundError(f"{data_dir}/cxr/covid/images has no JPEGs; set MEDRAG_DATA_DIR to the shared data")
    seeds = [Seed(path.name, path.read_bytes()) for path in jpegs]
    with Image.open(jpegs[0]) as opened:
        grey = opened.convert("L").resize((64, 53))
    variants = {"grey.png": grey, "deep.png": Image.fromarray(np.asarray(grey, dtype=np.uint16) * 257),
                "colour.png": grey.convert("RGB"), "palette.png": grey.convert("P")}
    for name, image in variants.items():
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        seeds.append(Seed(name, buffer.getvalue()))
    return seeds


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


@st.composite
def hostile_image(draw: st.DrawFn, seeds: list[Seed]) -> tuple[str, bytes]:
    """A (description, bytes) pair: random bytes, a seed whose header declares other dimensions, cut or flipped."""
    kind = draw(st.sampled_from(("random", "png-random", "dimensions", "truncate", "flip", "bomb")))
    if kind == "random":
        return kind, draw(st.binary(max_size=4096))
    if kind == "png-random":
        return kind, b"\x89PNG\r\n\x1a\n" + draw(st.binary(max_size=2048))
    if kind == "bomb":  # a valid PNG of one colour whose few kB of zlib inflate to width x height bytes
        width, height = draw(st.sampled_from(((100_000, 100_000), (8_000, 6_000), (20_000, 20_000), (1, 50_000_000))))
        compressor = zlib.compressobj(9)
        rows = b"".join(compressor.compress(bytes(width + 1)) for _ in range(min(height, 64)))
        header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
        data = (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", rows + compressor.flush())
                + _png_chunk(b"IEND", b""))
        return f"bomb {width} x {height}", data
    seed = draw(st.sampled_from(seeds))
    name, data = seed.name, seed.data
    if kind == "dimensions":
        width, height = draw(st.integers(0, 2**31 - 1)), draw(st.sampled_from((0, 1, 65535, 100_000, 2**31 - 1)))
        if data.startswith(b"\x89PNG"):
            header = struct.pack(">II", width, height) + data[24:29]
            fixed_crc = draw(st.booleans())
            crc = struct.pack(">I", zlib.crc32(b"IHDR" + header)) if fixed_crc else data[29:33]
            data = data[:16] + header + crc + data[33:]
        elif (start := data.find(b"\xff\xc0")) > 0 or (start := data.find(b"\xff\xc2")) > 0:
            data = data[:start + 5] + struct.pack(">HH", height % 65536, width % 65536) + data[start + 9:]
        return f"{name} declaring {width} x {height}", data
    if kind == "truncate":
        return f"{name} cut", data[:draw(st.integers(0, len(data)))]
    mutable = bytearray(data)
    for _ in range(draw(st.integers(1, 16))):
        offset = draw(st.integers(0, len(mutable) - 1))
        mutable[offset] ^= draw(st.integers(1, 255))
    return f"{name} flipped", bytes(mutable)


def decode_image(data: bytes, limits: LimitsConfig, name: str = "fuzzed.png") -> str:
    """``decoded`` or ``refused`` (an ImageReadError that names the file); a Crash otherwise."""
    try:
        image = load_image_file(_named(data, name), limits)
    except ImageReadError as error:
        if name not in str(error):
            raise Crash(f"the error does not name the file: {error}") from error
        return "refused"
    except Exception as error:
        raise Crash(f"{name}: {type(error).__name__}: {error}") from error
    _valid(image, image.metadata["rows"], image.metadata["columns"], name)
    return "decoded"


# ---- the guard and the runner -----------------------------------------------------------------------------------


def memory_bound(limits: LimitsConfig) -> int:
    """Bytes one case may allocate: the file and its parsed copy, plus the decode of the largest image allowed
    (stored values, float32 modality values and float64 windowing intermediates, about 24 bytes a pixel)."""
    return 3 * limits.max_image_mb * 2**20 + 24 * limits.max_image_pixels


@contextlib.contextmanager
def guarded(name: str, limits: LimitsConfig) -> Iterator[None]:
    """Raise Crash when the case uses more than CASE_SECONDS of CPU (SIGPROF, main thread only: a decoder stuck in
    C is caught when it returns) or traces more than :func:`memory_bound` bytes at its peak."""
    alarm = threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer")
    if alarm:
        def hang(signum: int, frame: Any) -> None:
            raise Crash(f"{name}: still running after {CASE_SECONDS:.0f} CPU seconds (a hang)")
        previous = signal.signal(signal.SIGPROF, hang)
        signal.setitimer(signal.ITIMER_PROF, CASE_SECONDS)
    tracing = not tracemalloc.is_tracing()
    if tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
        if peak > memory_bound(limits):
            raise Crash(f"{name}: allocated {peak / 2**20:.0f} MB, above the bound of "
                        f"{memory_bound(limits) / 2**20:.0f} MB")
    finally:
        if tracing:
            tracemalloc.stop()
        if alarm:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, previous)


def fuzz(strategy: st.SearchStrategy[tuple[str, bytes]], decode: Callable[[bytes, LimitsConfig, str], str],
         limits: LimitsConfig, examples: int) -> dict[str, Any]:
    """Run ``examples`` hostile inputs through ``decode``; the outcomes and the crashes hypothesis shrank to."""
    outcomes: Counter[str] = Counter()

    @settings(max_examples=examples, deadline=None, database=None, derandomize=False, print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def run_case(case: tuple[str, bytes]) -> None:
        description, data = case
        with guarded(description, limits), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about every odd value it reads; the outcome is what counts
            outcomes[decode(data, limits, description)] += 1

    started = time.perf_counter()
    crashes: list[str] = []
    try:
        run_case()
    except BaseExceptionGroup as group:  # several distinct failures, each shrunk
        crashes = [_first_line(error) for error in group.exceptions]
    except Exception as error:
        crashes = [_first_line(error)]
    return {"cases": sum(outcomes.values()) + len(crashes), "outcomes": dict(outcomes), "crashes": crashes,
            "seconds": round(time.perf_counter() - started, 1)}


def _first_line(error: BaseException) -> str:
    """The crash as the report shows it: its type and first line (the message names the shrunk input)."""
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def run(config: Config, out_dir: Path, quick: bool) -> dict[str, Any]:
    """Fuzz both decoders from the real files of ``config.data_dir``: 30 cases each when quick, 2,000 otherwise."""
    examples = 30 if quick else 2000
    data_dir = Path(config.data_dir)
    results = {
        "dicom": fuzz(hostile_dicom(dicom_seeds(data_dir, whole=not quick)), decode_dicom, config.limits, examples),
        "png": fuzz(hostile_image(image_seeds(data_dir)), decode_image, config.limits, examples),
    }
    crashes = [f"{parser}: {crash}" for parser, result in results.items() for crash in result["crashes"]]
    return {
        "headline": {"cases tried per parser": {parser: result["cases"] for parser, result in results.items()},
                     "crashes left": len(crashes)},
        "passed": not crashes,
        "crashes_left": crashes,
        "crashes_found_and_fixed": list(CRASHES_FOUND_AND_FIXED),
        "parsers": results,
        "limits": {"max_image_mb": config.limits.max_image_mb, "max_image_pixels": config.limits.max_image_pixels,
                   "max_dicom_depth": config.limits.max_dicom_depth},
    }


register_suite("hostile_images", run)
