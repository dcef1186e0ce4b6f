"""Classical lung-field segmentation of a frontal chest radiograph, and lung shares on the model's grid.

Used to ask whether the fusion reranker's image attention falls on the lungs: the share of its mass inside a
lung mask, against the share a uniform map would give. The segmentation is deliberately simple and needs no
trained model (numpy and scipy.ndimage only), so the measure does not depend on a second network's biases:

1. work on a copy whose longer side is :data:`WORKING_SIZE` pixels, contrast-stretched and smoothed, cut to
   the image inside any black frame (figures from papers, scanned film);
2. the mediastinum's column (the brightest column near the middle) is the midline, and the dark mask is cut
   there, so that two lungs joined over the top of a tight crop stay apart;
3. Otsu's threshold over the central box (where lungs and mediastinum lie and outside air rarely does)
   splits aerated lung from mediastinum, diaphragm and bone;
4. after an opening that breaks thin bridges, the dark component on each side of the midline with most
   pixels in the central box is that side's lung; its holes are filled and it is closed with a disk, which
   puts vessels, the hila and opacities enclosed by aerated lung inside the lung;
5. unless the result looks like two lungs (:func:`plausible_lungs`), lower thresholds are tried, down to
   the lower cut of a three-class Otsu (soft tissue beside or above the chest is often as dark as lung on
   over-windowed exports); if none does, the mask is empty and the image counts as unsegmented;
6. the mask is brought back to the image's size.

Known limits: a lung whitened by consolidation or effusion is not dark, so it is missed (the image then
usually has no plausible mask), and opacities at a lung's outer edge fall outside the mask.

It expects a frontal (PA/AP) view; a lateral view gives a mask with no anatomical meaning.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

WORKING_SIZE = 256
"""Longer side of the working copy: lungs stay tens of pixels wide, and every image costs the same."""
SMOOTHING = 2.0
"""Gaussian sigma in working pixels: removes noise and rib edges, keeps the lungs' outline."""
FRAME_LEVEL = 0.05
"""A pixel of the working copy at or below this is black (a frame around the image, or air)."""
FRAME_SHARE = 0.2
"""A row or column of the image proper has more than this share of non-black pixels."""
THRESHOLD_STEPS = 4
"""Thresholds tried per image (see :func:`_thresholds`)."""
CENTRAL_BOX = ((0.1, 0.75), (0.15, 0.85))
"""(top, bottom) and (left, right) shares of the image that hold the lungs and the mediastinum."""
MIDLINE_BAND = (0.35, 0.65)
"""Shares of the width searched for the mediastinum's column."""
MIN_AREA = 0.015
"""A lung covers at least this share of the image."""
AREA_RANGE = (0.05, 0.6)
"""Two lungs cover this range of shares of a frontal chest radiograph."""
SIDE_CONTACT = 0.3
"""A lung runs along the left or right image edge for at most this share of the height."""
TOP_CONTACT = 0.35
"""The lungs run along the top image edge for at most this share of the width (apices cut by a tight crop)."""
CENTRAL_SHARE = 0.5
"""A lung has at least this share of its pixels in the central box (outside air and shoulders have less)."""
OPENING = 0.02
"""Radius of the opening disk, as a share of the working size."""
CLOSING = 0.04
"""Radius of the closing disk, as a share of the working size."""


def segment_lungs(pixels: np.ndarray) -> np.ndarray:
    """Boolean H x W lung mask of a frontal radiograph; ``pixels`` H x W in [0, 1], air dark (MONOCHROME2,
    as :attr:`medrag.imaging.radiograph.Radiograph.pixels` holds it). Empty when no plausible pair of lungs
    is found (see :func:`plausible_lungs`)."""
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim != 2:
        raise ValueError(f"a radiograph is 2-D (H x W), got shape {pixels.shape}")
    small = _working_copy(pixels)
    top, bottom, left, right = _content_box(small)
    chest = small[top:bottom, left:right]
    central = _central_box(chest.shape)
    midline = _midline(chest)
    lungs = np.zeros(small.shape, dtype=bool)
    for threshold in _thresholds(chest[central]):
        dark = chest < threshold
        dark[:, max(midline - 2, 0) : midline + 3] = False
        found = _lungs(dark, central, midline)
        if plausible_lungs(found, midline):
            lungs[top:bottom, left:right] = found
            break
    return _resized_mask(lungs, pixels.shape)


def _content_box(small: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the image inside a black frame (figures from papers, scans of film):
    the first and last rows and columns with more than :data:`FRAME_SHARE` of their pixels above
    :data:`FRAME_LEVEL`. A lung must not join the frame, nor count its edge as the image border. The whole
    image when that box is implausibly small."""
    content = small > FRAME_LEVEL
    rows = np.flatnonzero(content.mean(axis=1) > FRAME_SHARE)
    cols = np.flatnonzero(content.mean(axis=0) > FRAME_SHARE)
    height, width = small.shape
    if len(rows) < height / 2 or len(cols) < width / 2:
        return 0, height, 0, width
    box = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    if box[1] - box[0] < height / 2 or box[3] - box[2] < width / 2:
        return 0, height, 0, width
    return box


def plausible_lungs(lungs: np.ndarray, midline: int) -> bool:
    """Whether a mask looks like two lungs: one on each side of the ``midline`` column, together covering
    :data:`AREA_RANGE` of the image, neither running down a side of the image nor along its top (dark soft
    tissue or air beside or above the chest joined to it)."""
    share = lungs.mean()
    if not AREA_RANGE[0] <= share <= AREA_RANGE[1]:
        return False
    if not (lungs[:, :midline].any() and lungs[:, midline:].any()):
        return False
    height, width = lungs.shape
    sides = max(lungs[:, 0].sum(), lungs[:, -1].sum()) <= SIDE_CONTACT * height
    return bool(sides and lungs[0].sum() <= TOP_CONTACT * width)


def _thresholds(values: np.ndarray) -> np.ndarray:
    """The cuts tried, brightest first: from Otsu's two classes (aerated lung against mediastinum and bone)
    down to the lower cut of three classes, for images where soft tissue beside or above the chest is as
    dark as the lung. A lower cut shrinks the dark areas and breaks their joins to the lungs."""
    return np.linspace(otsu_threshold(values), otsu_thresholds(values, classes=3)[0], THRESHOLD_STEPS)


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of ``values``: the cut that maximises the variance between the two classes
    (values below it are the dark class). Written with numpy so that medrag needs no scikit-image."""
    return otsu_thresholds(values, classes=2, bins=bins)[0]


def otsu_thresholds(values: np.ndarray, classes: int = 2, bins: int = 128) -> list[float]:
    """Multi-level Otsu: the ``classes - 1`` ascending cuts that maximise the variance between the classes,
    by exhaustive search over a histogram of ``bins`` bins (2 or 3 classes: cheap at this size)."""
    if classes not in (2, 3):
        raise ValueError(f"classes must be 2 or 3, got {classes}")
    values = np.asarray(values, dtype=np.float64).ravel()
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return [high] * (classes - 1)
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    centres = (edges[:-1] + edges[1:]) / 2
    # Cumulative weight and first moment: a class of bins [a, b) has weight w[b] - w[a], moment m[b] - m[a].
    weight = np.concatenate([[0.0], np.cumsum(counts)])
    moment = np.concatenate([[0.0], np.cumsum(counts * centres)])

    def between(start: np.ndarray, stop: np.ndarray) -> np.ndarray:
        w, m = weight[stop] - weight[start], moment[stop] - moment[start]
        return np.where(w > 0, m**2 / np.maximum(w, 1e-12), 0.0)

    cuts = np.arange(1, bins)
    if classes == 2:
        score = between(0, cuts) + between(cuts, bins)
        return [float(edges[cuts[int(np.argmax(score))]])]
    first, second = np.meshgrid(cuts, cuts, indexing="ij")
    score = np.where(first < second, between(0, first) + between(first, second) + between(second, bins), -np.inf)
    best_first, best_second = np.unravel_index(int(np.argmax(score)), score.shape)
    return [float(edges[cuts[best_first]]), float(edges[cuts[best_second]])]


def _working_copy(pixels: np.ndarray) -> np.ndarray:
    """Longer side :data:`WORKING_SIZE` (area averaging), stretched between the 1st and 99th percentiles
    (exports differ in window and burnt-in labels) and smoothed."""
    height, width = pixels.shape
    scale = WORKING_SIZE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BOX), dtype=np.float32)
    low, high = np.percentile(small, (1, 99))
    stretched = np.clip((small - low) / (high - low), 0.0, 1.0) if high > low else np.zeros_like(small)
    return ndimage.gaussian_filter(stretched, SMOOTHING)


def _central_box(shape: tuple[int, int]) -> np.ndarray:
    """The part of the image (:data:`CENTRAL_BOX`) that holds the lungs and the mediastinum in almost every
    frontal view, and rarely air outside the body: the threshold is chosen there, and lungs lie mostly there."""
    height, width = shape
    (top, bottom), (left, right) = CENTRAL_BOX
    box = np.zeros(shape, dtype=bool)
    box[round(top * height) : round(bottom * height), round(left * width) : round(right * width)] = True
    return box


def _midline(small: np.ndarray) -> int:
    """The column of the mediastinum: the brightest column (spine, heart) in the middle of the central box.
    Cutting the dark mask there keeps two lungs joined over the top of a tight crop apart."""
    height, width = small.shape
    (top, bottom), _ = CENTRAL_BOX
    left, right = round(MIDLINE_BAND[0] * width), round(MIDLINE_BAND[1] * width)
    profile = small[round(top * height) : round(bottom * height), left:right].mean(axis=0)
    return left + int(np.argmax(profile))


def _lungs(dark: np.ndarray, central: np.ndarray, midline: int) -> np.ndarray:
    """On each side of the midline, of the dark components big enough (:data:`MIN_AREA`) and mostly in the
    central box (:data:`CENTRAL_SHARE`), the one with most pixels there; holes filled and closed."""
    # An opening cuts bridges narrower than about a tenth of a lung (the trachea, a gap between the arm
    # and the chest wall, a thin rim of chest-wall soft tissue) that would merge a lung with other dark areas.
    opened = ndimage.binary_opening(dark, structure=_disk(max(1, round(OPENING * WORKING_SIZE))))
    labels, count = ndimage.label(opened)
    indices = np.arange(1, count + 1)
    areas = ndimage.sum_labels(opened, labels, indices)
    in_box = ndimage.sum_labels(central, labels, indices)
    centroids = ndimage.center_of_mass(opened, labels, indices)
    lungs = np.zeros(dark.shape, dtype=bool)
    radius = max(1, round(CLOSING * WORKING_SIZE))
    for side in (np.less, np.greater):
        candidates = [(box, index) for box, area, index, (_, col) in zip(in_box, areas, indices, centroids, strict=True)
                      if side(col, midline) and area >= MIN_AREA * dark.size and box >= CENTRAL_SHARE * area]
        if not candidates:
            continue
        lung = np.pad(labels == max(candidates)[1], radius)  # padded: a lung at the border closes fully
        lung = ndimage.binary_fill_holes(ndimage.binary_closing(lung, structure=_disk(radius)))
        lungs |= lung[radius:-radius, radius:-radius]
    return lungs


def _disk(radius: int) -> np.ndarray:
    """A disk-shaped structuring element of the given radius."""
    rows, cols = np.ogrid[-radius : radius + 1, -radius : radius + 1]
    return rows**2 + cols**2 <= radius**2


def _resized_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A working-size mask at ``shape`` (bilinear, cut at one half: smooth outlines, no blocky steps)."""
    height, width = shape
    resized = Image.fromarray(mask.astype(np.float32)).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized) >= 0.5


def mask_on_grid(mask: np.ndarray, grid: tuple[int, int] = (7, 7), size: int = 224) -> np.ndarray:
    """float (rows, cols): the lung share of each cell of an attention ``grid`` over the model's input.

    The model sees the image letterboxed (:func:`medrag.imaging.radiograph.model_transform`): longer side
    resized to ``size``, centred on a black ``size`` x ``size`` square. The mask goes through the same
    geometry (area averaging, so a cell's value is its lung fraction) and the padding counts as no lung;
    then each cell's mean is taken.
    """
    mask = np.asarray(mask, dtype=np.float32)
    height, width = mask.shape
    scale = size / max(height, width)
    resized_height, resized_width = max(1, round(height * scale)), max(1, round(width * scale))
    resized = np.asarray(Image.fromarray(mask).resize((resized_width, resized_height), Image.Resampling.BOX))
    square = np.zeros((size, size), dtype=np.float32)
    # SpatialPad puts the odd pixel of padding after the image, as // does here.
    top, left = (size - resized_height) // 2, (size - resized_width) // 2
    square[top : top + resized_height, left : left + resized_width] = resized
    rows, cols = grid
    row_edges = np.linspace(0, size, rows + 1).round().astype(int)
    col_edges = np.linspace(0, size, cols + 1).round().astype(int)
    return np.array([[square[row_edges[r] : row_edges[r + 1], col_edges[c] : col_edges[c + 1]].mean()
                      for c in range(cols)] for r in range(rows)], dtype=np.float64)


def attention_in_mask(attention: np.ndarray, cell_fraction: np.ndarray) -> float:
    """Share of an attention map's mass on the lungs: sum(attention * fraction) / sum(attention).

    With a uniform map this is the mean cell fraction, the share a model that looks everywhere would get;
    the difference from that baseline is what says the attention means something.
    """
    attention = np.asarray(attention, dtype=np.float64)
    cell_fraction = np.asarray(cell_fraction, dtype=np.float64)
    if attention.shape != cell_fraction.shape:
        raise ValueError(f"attention of shape {attention.shape} and lung fractions of shape {cell_fraction.shape} "
                         "differ; compute the fractions on the attention's grid (mask_on_grid)")
    total = float(attention.sum())
    if total <= 0:
        raise ValueError("the attention map has no mass (sum <= 0)")
    return float((attention * cell_fraction).sum() / total)
