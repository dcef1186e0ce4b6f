"""Decode radiographs (DICOM, PNG, JPEG) into one normalised greyscale form, and the encoder's input.

pydicom with the pylibjpeg plugins decodes the pixel data of every transfer syntax (uncompressed, JPEG
baseline and lossless, JPEG-LS, JPEG 2000, RLE); pydicom's LUT functions turn stored values into
modality values and apply a VOI LUT table; Pillow reads PNG/JPEG; MONAI resizes and scales for the model.
Hand-written is only :func:`window`, the PS3.3 windowing function onto [0, 1] (see there why).
"""

from __future__ import annotations

import functools
import logging
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


def read_dicom(path: str | Path | BinaryIO) -> Dataset:
    """Read a DICOM Part 10 file (or open binary stream) whole; a missing, non-DICOM, corrupt or truncated
    file is a DicomReadError."""
    path, origin = _opened(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            dataset = pydicom.dcmread(path)
    except OSError as error:
        raise DicomReadError(
            f"{origin}: cannot open the file ({error.strerror}); check the path and permissions"
        ) from error
    except InvalidDicomError as error:
        raise DicomReadError(
            f"{origin}: not a DICOM file (no 'DICM' marker after the 128-byte preamble); give a DICOM Part 10 file, "
            "or read PNG/JPEG images with load_image_file"
        ) from error
    except Exception as error:  # pydicom raises assorted types on corrupt input; all mean the same here
        raise DicomReadError(
            f"{origin}: corrupt DICOM ({type(error).__name__} while parsing); export the file again from its source"
        ) from error
    if any("End of file" in str(warning.message) for warning in caught) or _has_short_element(dataset):
        raise DicomReadError(f"{origin}: the DICOM file is truncated; copy or export it again from its source")
    return dataset


def _opened(source: str | Path | BinaryIO) -> tuple[Path | BinaryIO, str]:
    """A path or stream to read, and how to name it in an error message."""
    if hasattr(source, "read"):
        return source, str(getattr(source, "name", None) or "uploaded file")
    return Path(source), str(source)


def _has_short_element(dataset: Dataset) -> bool:
    """pydicom reads a value cut by the end of the file without complaint; the last element read is then
    shorter than the length its header declares."""
    last = max(dataset.keys(), default=None)
    raw = dataset.get_item(last) if last is not None else None
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
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise NotARadiograph(origin, f"{frames} frames, a radiograph has one")
    photometric = str(dataset.get("PhotometricInterpretation", "")).strip()
    if int(dataset.get("SamplesPerPixel", 1) or 1) != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise NotARadiograph(origin, f"a colour image ({photometric or 'no PhotometricInterpretation'})")


def modality_image(dataset: Dataset) -> ModalityImage:
    """Decoded pixels through the Modality LUT / rescale, with the header window (min-max when none)."""
    values = apply_modality_lut(_decode(dataset), dataset).astype(np.float32)
    center, width, function = _default_window(dataset, values)
    inverted = str(dataset.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1"
    return ModalityImage(values, center, width, function, inverted)


def to_radiograph(dataset: Dataset) -> Radiograph:
    """Display-ready pixels: Modality LUT, then the VOI LUT table if any (pydicom's preference too), else
    the header window, else min-max; MONOCHROME1 inverted."""
    image = modality_image(dataset)
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


def load_image_file(path: str | Path | BinaryIO) -> Radiograph:
    """A PNG/JPEG radiograph (a file, or an open binary stream such as an upload) as grey [0, 1]
    (colour converted to luma; EXIF rotation applied)."""
    path, origin = _opened(path)
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            pixels = _grey(image)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
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


def _decode(dataset: Dataset) -> np.ndarray:
    try:
        return dataset.pixel_array
    except Exception as error:  # decoders raise assorted types on bad streams; all mean the same here
        syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", None)
        name = syntax.name if syntax is not None else "unknown transfer syntax"
        raise DicomReadError(
            f"{_origin(dataset)}: pixel data cannot be decoded ({name}: {type(error).__name__}: {error}); "
            "install the decoder plugin pydicom names, or export the image again from its source"
        ) from error


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
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


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
    except (ValueError, NotImplementedError, AttributeError, IndexError, TypeError) as error:
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


def _grey(image: Image.Image) -> np.ndarray:
    """float32 [0, 1] from 8-bit, 16-bit or colour images."""
    if image.mode.startswith("I;16") or image.mode == "I":
        return (np.asarray(image, dtype=np.float32) / 65535.0).clip(0.0, 1.0)
    if image.mode == "F":
        pixels = np.asarray(image, dtype=np.float32)
        low, high = float(pixels.min()), float(pixels.max())
        return (pixels - low) / (high - low) if high > low else np.zeros_like(pixels)
    return np.asarray(image.convert("L"), dtype=np.float32) / 255.0
