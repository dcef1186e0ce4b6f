"""Pure image functions behind the radiograph viewer: window presets, re-windowing, zoom and attention overlays.

They live apart from the Streamlit page so that what the clinician sees (which window, which pixels are
inverted, where the model looked) is plain numpy that tests can check without a server. Windowing reuses
:func:`medrag.imaging.radiograph.window`, so the viewer shows exactly what ingestion computes; colours come
from matplotlib's colormaps (no figure is drawn, so no backend is needed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from medrag.imaging.radiograph import VOI_FUNCTIONS, ModalityImage, Radiograph, window

AUTO_PRESET = "Auto (0.5\u201399.5 percentile)"  # an en dash; written escaped for ruff's RUF001
FULL_RANGE_PRESET = "Full range"


@dataclass(frozen=True)
class WindowPreset:
    """A named window the user can pick."""

    name: str
    center: float
    width: float
    function: str = "LINEAR"
    """VOI LUT Function: LINEAR, LINEAR_EXACT or SIGMOID."""


def percentile_window(values: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """(center, width) spanning the ``low``..``high`` percentiles of ``values``, so a few outliers (burnt-in
    labels, collimator edges) do not flatten the contrast. The width is at least 1 for detector values and at least
    a thousandth of the range for PNG/JPEG intensities in [0, 1], so a flat image still gets a valid window."""
    if not 0 <= low < high <= 100:
        raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got low={low}, high={high}")
    bottom, top = (float(number) for number in np.percentile(values, [low, high]))
    span = float(np.max(values) - np.min(values))
    return (bottom + top) / 2, max(top - bottom, 1.0 if span > 1 else 1e-3)


def window_presets(image: ModalityImage, dataset: Dataset | None = None) -> list[WindowPreset]:
    """The header windows of ``dataset`` (usable ones, in header order), then Auto and Full range; never empty.

    Without a dataset (PNG/JPEG) only Auto and Full range.
    """
    presets = _header_presets(dataset) if dataset is not None else []
    center, width = percentile_window(image.values)
    presets.append(WindowPreset(AUTO_PRESET, center, width, "LINEAR_EXACT"))
    bottom, top = float(image.values.min()), float(image.values.max())
    presets.append(WindowPreset(FULL_RANGE_PRESET, (bottom + top) / 2, max(top - bottom, 1e-6), "LINEAR_EXACT"))
    return presets


def modality_from_radiograph(radiograph: Radiograph) -> ModalityImage:
    """A PNG/JPEG radiograph as a ModalityImage: its [0, 1] pixels with the identity window."""
    return ModalityImage(np.asarray(radiograph.pixels, dtype=np.float32), 0.5, 1.0, "LINEAR_EXACT", False)


def display_pixels(
    image: ModalityImage, center: float, width: float, function: str | None = None, *, invert: bool = False
) -> np.ndarray:
    """uint8 H x W grey for the screen: ``image`` windowed (with the image's VOI function unless ``function``
    is given), MONOCHROME1 inverted, then inverted again when the user asks with ``invert``."""
    grey = np.rint(window(image.values, center, width, function or image.function) * 255).astype(np.uint8)
    return 255 - grey if image.inverted != invert else grey


def zoom(pixels: np.ndarray, factor: float, focus: tuple[float, float] = (0.5, 0.5)) -> np.ndarray:
    """The part of ``pixels`` (H x W or H x W x 3) a ``factor`` times zoom shows: a crop of shape / factor
    centred at ``focus`` (fractions of rows and columns), moved inside the image at the borders.

    Not resampled: the browser scales the crop to the display size.
    """
    if not factor >= 1:
        raise ValueError(f"zoom factor must be at least 1 (1 shows the whole image), got {factor}")
    starts = []
    for size, fraction in zip(pixels.shape[:2], focus, strict=True):
        crop = max(1, round(size / factor))
        starts.append((min(max(round(fraction * size - crop / 2), 0), size - crop), crop))
    (top, rows), (left, cols) = starts
    return pixels[top : top + rows, left : left + cols]


def attention_on_image(grid: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """float32 H x W heat in [0, 1]: an attention ``grid`` (rows x cols over the model's letterboxed square
    input, see :func:`medrag.imaging.radiograph.model_transform`) mapped onto an image of ``shape``.

    The grid is upsampled bilinearly to the square of side max(H, W), the centred H x W part that holds the
    image is kept (the padding bands hold no anatomy), and that part is scaled from its minimum (0) to its
    maximum (1); a flat map is all zero. The square's rounding to the model size is ignored: it moves the heat by
    under one model pixel.
    """
    grid = np.asarray(grid, dtype=np.float32)
    if grid.ndim != 2:
        raise ValueError(f"attention grid must be 2-D (rows, cols), got shape {grid.shape}")
    height, width = shape
    side = max(height, width)
    square = np.asarray(Image.fromarray(np.ascontiguousarray(grid)).resize((side, side), Image.Resampling.BILINEAR))
    top, left = (side - height) // 2, (side - width) // 2
    heat = square[top : top + height, left : left + width]
    # Scaled from its least to its most: attention over a radiograph is close to uniform, and a map scaled by its
    # maximum alone would tint the whole image; what a reader needs is where the model looked more.
    low, high = float(heat.min()), float(heat.max())
    return ((heat - low) / (high - low) if high > low else np.zeros_like(heat)).astype(np.float32)


def overlay(pixels: np.ndarray, heat: np.ndarray, opacity: float, colormap: str = "inferno") -> np.ndarray:
    """uint8 H x W x 3: grey ``pixels`` with ``heat`` (H x W, [0, 1]) in ``colormap`` blended on top.

    Each pixel's alpha is ``opacity * heat``, so cold regions keep the radiograph visible under the colour.
    """
    if not 0 <= opacity <= 1:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity}")
    if pixels.shape != heat.shape:
        raise ValueError(f"pixels of shape {pixels.shape} and heat of shape {heat.shape} differ; give one heat value "
                         "per pixel (see attention_on_image)")
    alpha = (opacity * np.clip(heat, 0.0, 1.0)).astype(np.float32)[..., None]
    grey = pixels.astype(np.float32)[..., None]
    return np.rint(grey * (1 - alpha) + _colours(heat, colormap) * alpha).astype(np.uint8)


def colorbar(height: int = 256, width: int = 16, colormap: str = "inferno") -> np.ndarray:
    """uint8 height x width x 3 legend of ``colormap``: 1.0 at the top, 0.0 at the bottom."""
    values = np.repeat(np.linspace(1.0, 0.0, height, dtype=np.float32)[:, None], width, axis=1)
    return _colours(values, colormap).astype(np.uint8)


def _colours(values: np.ndarray, colormap: str) -> np.ndarray:
    """float32 ... x 3 RGB in 0..255 of ``values`` in [0, 1] through a 256-entry table of ``colormap`` (a table
    lookup instead of calling the colormap on every pixel, which would build a float64 RGBA copy)."""
    table = matplotlib.colormaps[colormap](np.linspace(0.0, 1.0, 256), bytes=True)[:, :3].astype(np.float32)
    return table[np.rint(np.clip(values, 0.0, 1.0) * 255).astype(np.intp)]


def _header_presets(dataset: Dataset) -> list[WindowPreset]:
    """One preset per usable WindowCenter/WindowWidth pair, named by WindowCenterWidthExplanation if present."""
    function = str(dataset.get("VOILUTFunction", "") or "").strip().upper()
    function = function if function in VOI_FUNCTIONS else "LINEAR"  # PS3.3: LINEAR when absent
    explanations = _items(dataset.get("WindowCenterWidthExplanation"))
    presets = []
    for number, (center, width) in enumerate(
        zip(_items(dataset.get("WindowCenter")), _items(dataset.get("WindowWidth")), strict=False), start=1
    ):
        try:
            center, width = float(center), float(width)
        except (TypeError, ValueError):
            continue
        if (width < 1) if function == "LINEAR" else (width <= 0):
            continue
        explanation = str(explanations[number - 1]).strip() if number <= len(explanations) else ""
        name = f"Header: {explanation}" if explanation else f"Header {number}"
        presets.append(WindowPreset(name, center, width, function))
    return presets


def _items(value: Any) -> list[Any]:
    """The values of a possibly multi-valued element; [] when absent."""
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, MultiValue | list | tuple) else [value]
