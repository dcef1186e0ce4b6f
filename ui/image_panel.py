"""The radiograph viewer of the Ask page: window/level with presets, invert, zoom and pan, and the fusion's image
attention as a heatmap with a colour bar.

Windowing works on the de-identified image's modality values (not on an 8-bit rendering), so a narrow window
really shows more grey levels; the pixel work is in ``ui.viewer``, this module only draws the controls.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import streamlit as st
from PIL import Image
from pydicom.dataset import Dataset

from medrag.imaging.radiograph import ModalityImage, Radiograph
from medrag.metrics import peak_ratio
from medrag.sources import citation_label
from medrag.types import Answer
from ui.viewer import (
    WindowPreset,
    attention_on_image,
    colorbar,
    display_pixels,
    modality_from_radiograph,
    overlay,
    window_presets,
    zoom,
)

DISPLAY_SIDE = 1024
"""Longest side sent to the browser: enough for a screen, and a 3000-pixel radiograph stays quick to redraw."""


@dataclasses.dataclass(frozen=True)
class Viewed:
    image: ModalityImage
    presets: list[WindowPreset]
    key: str
    """Distinguishes this image's controls from the last one's (a new image starts at its own window)."""
    source: str
    """"DICOM" or "PNG/JPEG"."""

    @classmethod
    def of_dicom(cls, image: ModalityImage, dataset: Dataset) -> Viewed:
        return cls(image, window_presets(image, dataset), _key(image.values), "DICOM")

    @classmethod
    def of_radiograph(cls, radiograph: Radiograph) -> Viewed:
        image = modality_from_radiograph(radiograph)
        return cls(image, window_presets(image), _key(image.values), "PNG/JPEG")


def _key(values: np.ndarray) -> str:
    return hashlib.sha1(values.tobytes()[: 1 << 20] + str(values.shape).encode()).hexdigest()[:10]


def image_panel(viewed: Viewed, answer: Answer | None) -> None:
    """The controls and the image; the heatmap controls appear once an answer has image attention."""
    key = f"view.{viewed.key}"
    low, high = float(viewed.image.values.min()), float(viewed.image.values.max())
    span = max(high - low, 1e-6)
    names = [preset.name for preset in viewed.presets]

    def apply_preset() -> None:
        preset = viewed.presets[names.index(st.session_state[f"{key}.preset"])]
        st.session_state[f"{key}.center"] = float(np.clip(preset.center, low, high))
        st.session_state[f"{key}.width"] = float(np.clip(preset.width, _min_width(span), 2 * span))

    if f"{key}.center" not in st.session_state:
        st.session_state[f"{key}.preset"] = names[0]
        apply_preset()
    controls, shown = st.columns([2, 5])
    with controls:
        st.selectbox("Window preset", names, key=f"{key}.preset", on_change=apply_preset)
        center = st.slider("Level (window centre)", low, high, key=f"{key}.center", step=span / 500,
                           format="%.4g" if span < 10 else "%.0f")
        width = st.slider("Window width", _min_width(span), 2 * span, key=f"{key}.width", step=span / 500,
                          format="%.4g" if span < 10 else "%.0f")
        invert = st.toggle("Invert", key=f"{key}.invert")
        factor = st.slider("Zoom", 1.0, 4.0, 1.0, 0.25, key=f"{key}.zoom")
        focus = (0.5, 0.5)
        if factor > 1:
            focus = (st.slider("Pan up/down", 0.0, 1.0, 0.5, key=f"{key}.pan_y"),
                     st.slider("Pan left/right", 0.0, 1.0, 0.5, key=f"{key}.pan_x"))
        heat = _heat_controls(answer, viewed.image.values.shape, key)
    preset = viewed.presets[names.index(st.session_state[f"{key}.preset"])]
    pixels = display_pixels(viewed.image, center, width, _function(preset, center, width), invert=invert)
    caption = f"{viewed.source}, de-identified; window C {center:.4g} / W {width:.4g}"
    if heat is not None:
        grid, opacity, label = heat
        pixels = overlay(pixels, grid, opacity)
        caption += f"; attention while reading {label} (colour bar: top = most)"
    with shown:
        picture, bar = st.columns([12, 1])
        picture.image(_for_display(zoom(pixels, factor, focus)), caption=caption, width="stretch")
        if heat is not None:
            bar.image(colorbar(height=240, width=14), width="stretch")


def _min_width(span: float) -> float:
    return 1.0 if span >= 50 else span / 500


def _function(preset: WindowPreset, center: float, width: float) -> str:
    """The preset's VOI function while its window is shown; LINEAR_EXACT once the user moves a slider off it (a
    LINEAR window needs a width of at least 1, which PNG intensities in [0, 1] never reach)."""
    if (center, width) == (preset.center, preset.width):
        return preset.function
    return "LINEAR_EXACT"


def _heat_controls(answer: Answer | None, shape: tuple[int, ...], key: str) -> tuple[np.ndarray, float, str] | None:
    fusion = answer.search.fusion if answer else None
    if fusion is None or not fusion.image_attention:
        return None
    if not st.toggle("Attention heatmap", value=True, key=f"{key}.heat",
                     help="Where the fusion module looked on the image while reading an evidence item"):
        return None
    labels = [f"{i}. {citation_label(item.collection, item.source_id)}" for i, item in enumerate(answer.evidence, 1)]
    chosen = st.selectbox("Attention for evidence", labels, key=f"{key}.heat_item")
    opacity = st.slider("Heatmap opacity", 0.0, 1.0, 0.5, 0.05, key=f"{key}.opacity")
    index = labels.index(chosen)
    grid = np.asarray(fusion.image_attention[index])
    # The heat is scaled from its least to its most, so a nearly even map looks as strong as a focused one: the
    # caption says how far from even it is (issue 15 measured about 1.2 and no extra weight on the lungs).
    return attention_on_image(grid, shape[:2]), opacity, f"{chosen}; hottest cell {peak_ratio(grid):.2f}x an even map"


def _for_display(pixels: np.ndarray) -> np.ndarray:
    """At most ``DISPLAY_SIDE`` pixels on the longer side (area averaging)."""
    rows, cols = pixels.shape[:2]
    scale = DISPLAY_SIDE / max(rows, cols)
    if scale >= 1:
        return pixels
    size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BOX))
