"""Decode radiographs (DICOM, PNG, JPEG) into one normalised greyscale form, and the encoder's input.

pydicom with the pylibjpeg plugins decodes the pixel data of every transfer syntax (uncompressed, JPEG
baseline and lossless, JPEG-LS, JPEG 2000, RLE); pydicom's LUT functions turn stored values into
modality values and apply a VOI LUT table; Pillow reads PNG/JPEG; MONAI resizes and scales for the model.
Hand-written is only :func:`window`, the PS3.3 windowing function onto [0, 1] (see there why).

Every file comes from outside (an upload, a PACS export), so the limits of :class:`LimitsConfig` are checked before
the expensive step they protect: the file size before parsing, the sequence depth after parsing, the declared
pixel count and the pixel format before decoding, the declared PNG/JPEG size before decompressing. Whatever a
hostile or broken file does, the caller gets a :class:`DicomReadError`, :class:`ImageReadError` or
:class:`NotARadiograph` (all ValueError) naming the file and the fix; ``reliability/hostile_images.py`` fuzzes
that promise.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import math
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import pydicom
from PIL import Image, ImageOps
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, apply_voi

from medrag.config import LimitsConfig

if TYPE_CHECKING:
    import torch
    from monai.transforms import Compose

logger = logging.getLogger(__name__)

RADIOGRAPH_MODALITIES = ("CR", "DX", "DR", "RG")
"""Computed and digital radiography, RG (film/screen radiography), and DR, a non-standard value some
vendors write for DX."""

NON_IMAGE_MODALITIES = frozenset({"SR", "PR", "KO", "DOC", "REG", "SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD"})

VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")

_UNDEFINED_LENGTH = 0xFFFFFFFF

DEFAULT_LIMITS = LimitsConfig()
"""The limits of a default configuration, for callers that are not given a Config."""

SUPPORTED_BITS_ALLOCATED = (8, 16)
"""Radiography detectors store 10 to 16 bits; 1-bit (a bitmap), 32- and 64-bit (float or integer) greyscale is not
a radiograph and is refused before decoding rather than guessed at."""

_LIMIT_HINT = "[limits] {key} in medrag.toml or MEDRAG_LIMITS_{env}"


class DicomReadError(ValueError):
    """A DICOM file cannot be read or its pixels cannot be decoded; the message names the file and the fix."""


class ImageReadError(ValueError):
    """A PNG/JPEG file cannot be read; the message names the file and the fix."""


class NotARadiograph(ValueError):
    """A readable DICOM object that is not a single-frame greyscale radiograph; pipelines report and skip it."""

    def __init__(self, origin: str, reason: str):
        super().__init__(f"{origin}: {reason}; skipped (medrag ingests single-frame greyscale radiographs)")
        self.origin = origin
        self.reason = reason

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        return type(self), (self.origin, self.reason)  # survives pickling (process pools)


@dataclass(frozen=True, eq=False)
class Radiograph:
    """A radiograph ready for display and encoding."""

    pixels: np.ndarray
    """float32, H x W, in [0, 1], bright = dense (MONOCHROME2 convention)."""
    metadata: dict[str, Any]
    """Non-identifying acquisition facts (see :func:`radiograph_metadata`); None where absent."""


@dataclass(frozen=True, eq=False)
class ModalityImage:
    """Pixel values after the Modality LUT (rescale), with the default window: what a viewer re-windows."""

    values: np.ndarray
    """float32, H x W, in modality units (raw detector values for most radiographs)."""
    center: float
    width: float
    function: str = "LINEAR"
    """VOI LUT Function (PS3.3 C.11.2.1.3): LINEAR, LINEAR_EXACT or SIGMOID."""
    inverted: bool = False
    """MONOCHROME1: low values are displayed bright."""

    def windowed(self, center: float | None = None, width: float | None = None) -> np.ndarray:
        """float32 in [0, 1], bright = dense, with the default window or the one given."""
        pixels = window(
            self.values,
            self.center if center is None else center,
            self.width if width is None else width,
            self.function,
        )
        return 1.0 - pixels if self.inverted else pixels


def read_dicom(path: str | Path | BinaryIO, limits: LimitsConfig = DEFAULT_LIMITS) -> Dataset:
    """Read a DICOM Part 10 file (or open binary stream) whole; a missing, non-DICOM, corrupt, truncated,
    oversized or too deeply nested file is a DicomReadError.

    The file is read into memory first (at most ``limits.max_image_mb``) and parsed from there: pydicom reads a
    value with ``read(length)``, and a file object allocates a lying 4 GB length up front, a memory buffer does not.
    """
    source, origin = _opened(path)
    try:
        buffer = _read_bounded(source, origin, limits, DicomReadError)
    except OSError as error:
        raise DicomReadError(
            f"{origin}: cannot open the file ({error.strerror}); check the path and permissions"
        ) from error
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dataset = pydicom.dcmread(buffer)
    except RecursionError as error:  # undefined-length sequences are parsed recursively while reading
        raise _too_deep(origin, limits) from error
    except InvalidDicomError as error:
        raise DicomReadError(
            f"{origin}: not a DICOM file (no 'DICM' marker after the 128-byte preamble); give a DICOM Part 10 file, "
            "or read PNG/JPEG images with load_image_file"
        ) from error
    except Exception as error:  # pydicom raises assorted types on corrupt input; all mean the same here
        raise DicomReadError(
            f"{origin}: corrupt DICOM ({type(error).__name__} while parsing); export the file again from its source"
        ) from error
    if any("End of file" in str(warning.message) for warning in caught) or _has_short_element(dataset, origin):
        raise DicomReadError(f"{origin}: the DICOM file is truncated; copy or export it again from its source")
    _parse_nested(dataset, origin, limits)
    return dataset


def _opened(source: str | Path | BinaryIO) -> tuple[Path | BinaryIO, str]:
    """A path or stream to read, and how to name it in an error message."""
    if hasattr(source, "read"):
        return source, str(getattr(source, "name", None) or "uploaded file")
    return Path(source), str(source)


def _read_bounded(source: Path | BinaryIO, origin: str, limits: LimitsConfig,
                  error: type[ValueError]) -> io.BytesIO:
    """The file's bytes in memory, named as the file (pydicom keeps the name as ``filename``), refused with
    ``error`` above ``limits.max_image_mb`` before more than that is read."""
    most = limits.max_image_mb * 2**20
    chunks, size = [], 0
    with source.open("rb") if isinstance(source, Path) else contextlib.nullcontext(source) as handle:
        while size <= most and (chunk := handle.read(min(2**20, most + 1 - size))):  # read(n) allocates n bytes
            chunks.append(chunk)
            size += len(chunk)
    if size > most:
        raise error(f"{origin}: the file is larger than {limits.max_image_mb} MB, the limit for an image "
                    f"({_LIMIT_HINT.format(key='max_image_mb', env='MAX_IMAGE_MB')}); export a smaller image "
                    "or raise the limit")
    buffer = io.BytesIO(b"".join(chunks))
    name = str(source) if isinstance(source, Path) else getattr(source, "name", None)
    if isinstance(name, str):
        buffer.name = name
    return buffer


def _too_deep(origin: str, limits: LimitsConfig) -> DicomReadError:
    return DicomReadError(
        f"{origin}: DICOM sequences nest deeper than {limits.max_dicom_depth} levels, the limit "
        f"({_LIMIT_HINT.format(key='max_dicom_depth', env='MAX_DICOM_DEPTH')}); a radiograph header nests 3 or 4 "
        "deep: export the image again from its source")


def _parse_nested(dataset: Dataset, origin: str, limits: LimitsConfig) -> None:
    """Convert every element, nested items too, level by level without recursion, and refuse nesting beyond the
    limit.

    pydicom parses a defined-length sequence only when it is first accessed: without this, a malformed value or a
    sequence nested thousands deep would raise (RecursionError, struct.error, ...) later, in whichever code
    touches it first (the de-identifier walks every item), instead of here as a DicomReadError.
    """
    pending = [(dataset, 0)]
    while pending:
        item, depth = pending.pop()
        if depth > limits.max_dicom_depth:
            raise _too_deep(origin, limits)
        try:
            for element in item:
                if element.VR == "SQ":
                    pending.extend((nested, depth + 1) for nested in element.value)
        except RecursionError as error:
            raise _too_deep(origin, limits) from error
        except Exception as error:  # pydicom's value converters raise assorted types; all mean the same here
            raise _corrupt_value(origin, error) from error


def _corrupt_value(origin: str, error: Exception) -> DicomReadError:
    return DicomReadError(f"{origin}: corrupt DICOM ({type(error).__name__} in an element value); export the file "
                          "again from its source")


def _has_short_element(dataset: Dataset, origin: str) -> bool:
    """pydicom reads a value cut by the end of the file without complaint; the last element read is then
    shorter than the length its header declares."""
    last = max(dataset.keys(), default=None)
    try:
        raw = dataset.get_item(last) if last is not None else None
    except Exception as error:  # get_item converts some raw elements (an unknown VR raises NotImplementedError)
        raise _corrupt_value(origin, error) from error
    return (
        isinstance(raw, RawDataElement)
        and raw.length != _UNDEFINED_LENGTH
        and isinstance(raw.value, bytes)
        and len(raw.value) < raw.length
    )


def check_radiograph(dataset: Dataset, modalities: tuple[str, ...] = RADIOGRAPH_MODALITIES, origin: str = "") -> None:
    """Raise NotARadiograph, with the reason, unless ``dataset`` is one greyscale radiograph frame."""
    origin = origin or _origin(dataset)
    modality = str(dataset.get("Modality", "") or "").strip().upper()
    if modality in NON_IMAGE_MODALITIES:
        raise NotARadiograph(origin, f"a {modality} object, not an image")
    if modality not in modalities:
        found = f"modality {modality}" if modality else "no Modality"
        raise NotARadiograph(origin, f"{found}, not a radiograph (one of {', '.join(modalities)})")
    if "PixelData" not in dataset:
        raise NotARadiograph(origin, "no pixel data (not an image, or the file was cut short)")
    frames = _count(dataset, "NumberOfFrames", origin, default=1)
    if frames > 1:
        raise NotARadiograph(origin, f"{frames} frames, a radiograph has one")
    photometric = str(dataset.get("PhotometricInterpretation", "")).strip()
    if _count(dataset, "SamplesPerPixel", origin, default=1) != 1 or photometric not in ("MONOCHROME1",
                                                                                          "MONOCHROME2"):
        raise NotARadiograph(origin, f"a colour image ({photometric or 'no PhotometricInterpretation'})")


def check_pixel_format(dataset: Dataset, limits: LimitsConfig = DEFAULT_LIMITS, origin: str = "") -> None:
    """Refuse, before anything is decoded, pixel data that are too large or not a greyscale radiograph's.

    The decoders allocate what the header declares (Rows x Columns x SamplesPerPixel x frames); a 200-byte
    file may declare 65535 x 65535. Supported: one frame, one sample (MONOCHROME1/2), 8- or 16-bit allocated.
    Colour (RGB, YBR, PALETTE COLOR) and several frames are NotARadiograph, as in :func:`check_radiograph`;
    the rest is a DicomReadError.
    """
    origin = origin or _origin(dataset)
    rows, columns = _count(dataset, "Rows", origin), _count(dataset, "Columns", origin)
    samples = _count(dataset, "SamplesPerPixel", origin, default=1)
    frames = _count(dataset, "NumberOfFrames", origin, default=1)
    declared = rows * columns * samples * frames
    if declared > limits.max_image_pixels:
        raise DicomReadError(
            f"{origin}: declares {rows} x {columns} pixels x {samples} samples x {frames} frames = {declared:,}, "
            f"above the limit of {limits.max_image_pixels:,} "
            f"({_LIMIT_HINT.format(key='max_image_pixels', env='MAX_IMAGE_PIXELS')}); check the file, or raise "
            "the limit for a larger detector")
    if declared == 0:
        raise DicomReadError(f"{origin}: declares no pixels (Rows {rows}, Columns {columns}); the header is "
                             "broken: export the image again from its source")
    photometric = str(dataset.get("PhotometricInterpretation", "")).strip()
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise NotARadiograph(origin, f"a colour image ({photometric or 'no PhotometricInterpretation'}, "
                                     f"{samples} samples per pixel)")
    if frames != 1:
        raise NotARadiograph(origin, f"{frames} frames, a radiograph has one")
    allocated = _count(dataset, "BitsAllocated", origin)
    stored = _count(dataset, "BitsStored", origin, default=allocated)
    if allocated not in SUPPORTED_BITS_ALLOCATED or not 1 <= stored <= allocated:
        raise DicomReadError(
            f"{origin}: {stored} bits stored in {allocated} allocated; medrag decodes greyscale radiographs of "
            f"{' or '.join(map(str, SUPPORTED_BITS_ALLOCATED))} bits allocated: export the image as 16-bit "
            "MONOCHROME2")
    if _count(dataset, "PixelRepresentation", origin, default=0) not in (0, 1):
        raise DicomReadError(f"{origin}: PixelRepresentation is neither 0 (unsigned) nor 1 (signed); the header "
                             "is broken: export the image again from its source")


def _count(dataset: Dataset, keyword: str, origin: str, default: int | None = None) -> int:
    """A non-negative integer header value (US or IS), or a DicomReadError naming it: a fuzzed header holds text,
    several values or negative numbers where a count belongs."""
    value = dataset.get(keyword)
    if value is None or value == "":
        if default is None:
            raise DicomReadError(f"{origin}: no {keyword} in the header, so the pixel data cannot be read; export "
                                 "the image again from its source")
        return default
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        number = -1
    if number < 0 or number != value:
        raise DicomReadError(f"{origin}: {keyword} is {value!r}, not a count; the header is broken: export the "
                             "image again from its source")
    return number


def modality_image(dataset: Dataset, limits: LimitsConfig = DEFAULT_LIMITS) -> ModalityImage:
    """Decoded pixels through the Modality LUT / rescale, with the header window (min-max when none)."""
    values = _modality_values(_decode(dataset, limits), dataset)
    center, width, function = _default_window(dataset, values)
    inverted = str(dataset.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1"
    return ModalityImage(values, center, width, function, inverted)


def to_radiograph(dataset: Dataset, limits: LimitsConfig = DEFAULT_LIMITS) -> Radiograph:
    """Display-ready pixels: Modality LUT, then the VOI LUT table if any (pydicom's preference too), else
    the header window, else min-max; MONOCHROME1 inverted."""
    image = modality_image(dataset, limits)
    table = _through_voi_lut(image.values, dataset)
    if table is None:
        return Radiograph(image.windowed(), radiograph_metadata(dataset))
    return Radiograph(1.0 - table if image.inverted else table, radiograph_metadata(dataset))


def window(values: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """Map modality values onto [0, 1] with a window (PS3.3 C.11.2.1.2 and C.11.2.1.3).

    Hand-written because pydicom's ``apply_windowing`` needs a whole dataset and returns values in the
    stored-bits range of that dataset; re-windowing in a viewer needs a function of array, centre and width.
    """
    values = np.asarray(values, dtype=np.float64)
    function = function.upper()
    if function == "LINEAR":
        if width < 1:
            raise ValueError(f"window width {width} is below 1, the least a LINEAR window allows")
        if width == 1:
            return (values > center - 0.5).astype(np.float32)
        scaled = (values - (center - 0.5)) / (width - 1) + 0.5
    elif function == "LINEAR_EXACT":
        if width <= 0:
            raise ValueError(f"window width {width} must be above 0")
        scaled = (values - center) / width + 0.5
    elif function == "SIGMOID":
        if width <= 0:
            raise ValueError(f"window width {width} must be above 0")
        with np.errstate(over="ignore"):  # exp overflows to inf far below the centre: 1 / inf is the right 0
            scaled = 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    else:
        raise ValueError(f"VOI LUT Function {function!r} is not one of {', '.join(VOI_FUNCTIONS)}")
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def radiograph_metadata(dataset: Dataset) -> dict[str, Any]:
    """The acquisition facts a retrieval filter or a report needs; nothing that identifies anyone."""
    rows, columns = dataset.get("Rows"), dataset.get("Columns")
    return {
        "modality": _text(dataset, "Modality"),
        "view_position": _text(dataset, "ViewPosition"),
        "body_part": _text(dataset, "BodyPartExamined"),
        "laterality": _text(dataset, "ImageLaterality") or _text(dataset, "Laterality"),
        "rows": int(rows) if rows is not None else None,
        "columns": int(columns) if columns is not None else None,
        "pixel_spacing": _pixel_spacing(dataset),
        "manufacturer": _text(dataset, "Manufacturer"),
    }


IMAGE_FORMATS = ("PNG", "JPEG")
"""The only Pillow decoders a query or case image goes through: each other format is more parser to attack."""


def load_image_file(path: str | Path | BinaryIO, limits: LimitsConfig = DEFAULT_LIMITS) -> Radiograph:
    """A PNG/JPEG radiograph (a file, or an open binary stream such as an upload) as grey [0, 1]
    (colour converted to luma; EXIF rotation applied).

    The file size and the declared width x height are checked against ``limits`` before anything is
    decompressed: a 50 kB PNG can declare 100,000 x 100,000 pixels. Pillow's own bomb check
    (``Image.MAX_IMAGE_PIXELS``, process-wide) is left as it is and only backs this one up.
    """
    source, origin = _opened(path)
    try:
        buffer = _read_bounded(source, origin, limits, ImageReadError)
    except OSError as error:
        raise ImageReadError(f"{origin}: cannot open the file ({error.strerror}); check the path") from error
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(buffer, formats=IMAGE_FORMATS) as opened:
                _check_image_size(opened, origin, limits)
                image = ImageOps.exif_transpose(opened)
                pixels = _grey(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise _too_many_pixels(origin, str(error), limits) from error
    except ImageReadError:  # _check_image_size's, already clear: not to be rewrapped as a ValueError below
        raise
    except (OSError, ValueError, SyntaxError, EOFError) as error:  # Pillow's types for broken and cut streams
        raise ImageReadError(
            f"{origin}: not a readable PNG/JPEG image ({type(error).__name__}); check the file, or read DICOM files "
            "with read_dicom"
        ) from error
    metadata = dict.fromkeys(("modality", "view_position", "body_part", "laterality", "pixel_spacing", "manufacturer"))
    metadata |= {"rows": pixels.shape[0], "columns": pixels.shape[1]}
    return Radiograph(pixels, metadata)


@functools.lru_cache(maxsize=4)
def model_transform(size: int = 224) -> Compose:
    """MONAI chain from an H x W [0, 1] image to a (3, size, size) float tensor in [0, 1].

    The image is min-max scaled, its longer side resized to ``size`` (area averaging: no aliasing and no
    dark rim; aspect kept, so heart and lungs keep their proportions), centred on a black square, and
    repeated to 3 channels.
    Normalisation for a particular encoder is left to that encoder.
    """
    import torch
    from monai.transforms import (
        Compose,
        EnsureChannelFirst,
        EnsureType,
        RepeatChannel,
        Resize,
        ScaleIntensity,
        SpatialPad,
    )

    return Compose([
        EnsureChannelFirst(channel_dim="no_channel"),
        ScaleIntensity(minv=0.0, maxv=1.0),
        Resize(spatial_size=size, size_mode="longest", mode="area"),
        SpatialPad(spatial_size=(size, size)),
        RepeatChannel(repeats=3),
        EnsureType(data_type="tensor", dtype=torch.float32, track_meta=False),
    ])


def model_input(radiograph: Radiograph, size: int = 224) -> torch.Tensor:
    """The encoder's input for one radiograph: (3, size, size), float32, [0, 1]."""
    return model_transform(size)(radiograph.pixels)


def _origin(dataset: Dataset) -> str:
    return str(getattr(dataset, "filename", None) or "dataset")


def _decode(dataset: Dataset, limits: LimitsConfig) -> np.ndarray:
    """The stored pixel values, H x W, after :func:`check_pixel_format`; a stream that fails is a DicomReadError."""
    check_pixel_format(dataset, limits)
    try:
        pixels = dataset.pixel_array
    except Exception as error:  # decoders raise assorted types on bad streams; all mean the same here
        syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
        name = syntax.name if syntax is not None else "unknown transfer syntax"
        raise DicomReadError(
            f"{_origin(dataset)}: pixel data cannot be decoded ({name}: {type(error).__name__}: {error}); "
            "install the decoder plugin pydicom names, or export the image again from its source"
        ) from error
    if pixels.shape != (dataset.Rows, dataset.Columns):  # a decoder may trust the stream over the header
        raise DicomReadError(
            f"{_origin(dataset)}: the pixel data decode to {pixels.shape}, the header says {dataset.Rows} x "
            f"{dataset.Columns}; export the image again from its source")
    return pixels


def _modality_values(pixels: np.ndarray, dataset: Dataset) -> np.ndarray:
    """The Modality LUT / rescale applied, as float32; a table or slope that gives no finite values is a
    DicomReadError (a NaN would pass every later clip and reach the encoder)."""
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            values = apply_modality_lut(pixels, dataset).astype(np.float32)
    except Exception as error:  # pydicom reads the LUT or slope from the header as it finds them
        raise DicomReadError(
            f"{_origin(dataset)}: the Modality LUT or rescale cannot be applied ({type(error).__name__}); "
            "export the image again from its source") from error
    if not np.isfinite(values).all():
        raise DicomReadError(
            f"{_origin(dataset)}: RescaleSlope {dataset.get('RescaleSlope')} and RescaleIntercept "
            f"{dataset.get('RescaleIntercept')} give values out of range; export the image again from its source")
    return values


def _default_window(dataset: Dataset, values: np.ndarray) -> tuple[float, float, str]:
    """The first header window if it is usable, else one spanning the values exactly (min-max)."""
    function = str(dataset.get("VOILUTFunction", "") or "").strip().upper()
    function = function if function in VOI_FUNCTIONS else "LINEAR"  # PS3.3: LINEAR when absent
    center, width = _first(dataset.get("WindowCenter")), _first(dataset.get("WindowWidth"))
    if center is not None and width is not None and (width >= 1 if function == "LINEAR" else width > 0):
        return center, width, function
    low, high = float(values.min()), float(values.max())
    return (low + high) / 2, max(high - low, 1e-6), "LINEAR_EXACT"


def _first(value: Any) -> float | None:
    """The first of a possibly multi-valued DS, or None."""
    if isinstance(value, MultiValue | list):
        value = value[0] if value else None
    try:
        number = float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
    return number if number is not None and math.isfinite(number) else None  # a NaN centre windows to NaN


def _through_voi_lut(values: np.ndarray, dataset: Dataset) -> np.ndarray | None:
    """pydicom's VOI LUT table lookup onto [0, 1], or None without a usable table.

    Scaled by the table's own output range: the bit depth in LUT Descriptor is often not what the table uses.
    """
    if not dataset.get("VOILUTSequence"):
        return None
    try:
        entries, first = (int(number) for number in dataset.VOILUTSequence[0].LUTDescriptor[:2])
        table = apply_voi(np.arange(first, first + (entries or 2**16)), dataset).astype(np.float64)
        mapped = apply_voi(np.rint(values).astype(np.int64), dataset).astype(np.float64)
    except (ValueError, NotImplementedError, AttributeError, IndexError, TypeError, struct.error) as error:
        # struct.error: LUT Data shorter than its descriptor says
        logger.warning("%s: VOI LUT unusable (%s), the window is used instead", _origin(dataset),
                       type(error).__name__)
        return None
    low, high = float(table.min()), float(table.max())
    return ((mapped - low) / (high - low) if high > low else np.zeros_like(mapped)).astype(np.float32)


def _text(dataset: Dataset, keyword: str) -> str | None:
    value = dataset.get(keyword)
    text = str(value).strip() if value is not None else ""
    return text or None


def _pixel_spacing(dataset: Dataset) -> list[float] | None:
    """Pixel Spacing, else Imager Pixel Spacing, in mm; None where absent or zero (NEMA RG1 writes 0.000)."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = dataset.get(keyword)
        try:
            spacing = [float(number) for number in value] if value else []
        except (TypeError, ValueError):
            continue
        if len(spacing) == 2 and all(number > 0 for number in spacing):
            return spacing
    return None


def _check_image_size(image: Image.Image, origin: str, limits: LimitsConfig) -> None:
    """Refuse a PNG/JPEG whose header declares more pixels than the limit, before it is decompressed."""
    width, height = image.size
    if width * height > limits.max_image_pixels:
        raise _too_many_pixels(origin, f"{width} x {height} = {width * height:,} pixels", limits)
    if width * height == 0:
        raise ImageReadError(f"{origin}: the image declares no pixels ({width} x {height}); check the file")


def _too_many_pixels(origin: str, declared: str, limits: LimitsConfig) -> ImageReadError:
    return ImageReadError(
        f"{origin}: declares more pixels than the limit of {limits.max_image_pixels:,} ({declared}; "
        f"{_LIMIT_HINT.format(key='max_image_pixels', env='MAX_IMAGE_PIXELS')}); a decompression bomb, or an image "
        "far larger than a radiograph: check the file, or raise the limit")


def _grey(image: Image.Image) -> np.ndarray:
    """float32 [0, 1] from 8-bit, 16-bit or colour images."""
    if image.mode.startswith("I;16") or image.mode == "I":
        return (np.asarray(image, dtype=np.float32) / 65535.0).clip(0.0, 1.0)
    if image.mode == "F":
        pixels = np.asarray(image, dtype=np.float32)
        low, high = float(pixels.min()), float(pixels.max())
        return (pixels - low) / (high - low) if high > low else np.zeros_like(pixels)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
