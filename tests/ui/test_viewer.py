"""The viewer's image functions: window presets, re-windowing, MONOCHROME1, zoom, attention mapping, overlays."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from pydicom.dataset import Dataset

from medrag.imaging.radiograph import ModalityImage, Radiograph, modality_image, read_dicom
from ui.viewer import (
    AUTO_PRESET,
    FULL_RANGE_PRESET,
    WindowPreset,
    attention_on_image,
    colorbar,
    display_pixels,
    modality_from_radiograph,
    overlay,
    percentile_window,
    window_presets,
    zoom,
)


def ramp(low: float = 0.0, high: float = 1000.0, shape: tuple[int, int] = (50, 40)) -> ModalityImage:
    values = np.linspace(low, high, shape[0] * shape[1], dtype=np.float32).reshape(shape)
    return ModalityImage(values, (low + high) / 2, high - low)


def header(centers: list | str, widths: list | str, explanations: list | str | None = None,
           function: str | None = None) -> Dataset:
    dataset = Dataset()
    dataset.WindowCenter = centers
    dataset.WindowWidth = widths
    if explanations is not None:
        dataset.WindowCenterWidthExplanation = explanations
    if function is not None:
        dataset.VOILUTFunction = function
    return dataset


def test_multi_valued_header_windows_become_named_presets_before_auto_and_full_range() -> None:
    presets = window_presets(ramp(), header(["40", "400"], ["400", "1500"], ["SOFT TISSUE", "BONE"]))
    assert presets[:2] == [WindowPreset("Header: SOFT TISSUE", 40.0, 400.0, "LINEAR"),
                           WindowPreset("Header: BONE", 400.0, 1500.0, "LINEAR")]
    assert [preset.name for preset in presets[2:]] == [AUTO_PRESET, FULL_RANGE_PRESET]
    assert presets[3] == WindowPreset(FULL_RANGE_PRESET, 500.0, 1000.0, "LINEAR_EXACT")


def test_single_valued_header_and_missing_explanations_are_numbered() -> None:
    assert window_presets(ramp(), header("15000", "30000"))[0] == WindowPreset("Header 1", 15000.0, 30000.0)
    presets = window_presets(ramp(), header(["40", "400"], ["400", "1500"], "SOFT TISSUE"))
    assert [preset.name for preset in presets[:2]] == ["Header: SOFT TISSUE", "Header 2"]


def test_unusable_header_width_is_skipped_by_the_voi_function_rule() -> None:
    linear = window_presets(ramp(), header(["40", "400"], ["0.5", "1500"]))
    assert [preset.name for preset in linear] == ["Header 2", AUTO_PRESET, FULL_RANGE_PRESET]
    exact = window_presets(ramp(), header(["40", "400"], ["0.5", "0"], function="LINEAR_EXACT"))
    assert [(preset.name, preset.function) for preset in exact[:-2]] == [("Header 1", "LINEAR_EXACT")]
    sigmoid = window_presets(ramp(), header("40", "-3", function="SIGMOID"))
    assert [preset.name for preset in sigmoid] == [AUTO_PRESET, FULL_RANGE_PRESET]


def test_png_gets_auto_and_full_range_and_shows_its_own_pixels() -> None:
    pixels = np.linspace(0.0, 1.0, 12, dtype=np.float32).reshape(3, 4)
    image = modality_from_radiograph(Radiograph(pixels, {}))
    assert (image.center, image.width, image.function, image.inverted) == (0.5, 1.0, "LINEAR_EXACT", False)
    assert [preset.name for preset in window_presets(image)] == [AUTO_PRESET, FULL_RANGE_PRESET]
    assert np.array_equal(display_pixels(image, image.center, image.width), np.rint(pixels * 255).astype(np.uint8))
    constant = modality_from_radiograph(Radiograph(np.zeros((3, 4), np.float32), {}))
    assert all(preset.width > 0 for preset in window_presets(constant))


def test_percentile_window_ignores_a_few_outliers() -> None:
    values = np.tile(np.arange(100, 300, dtype=np.float32), (50, 1))  # 10,000 pixels of 100..299
    values.flat[:10] = 60000.0
    center, width = percentile_window(values)
    assert 90 < center - width / 2 < 110 and 290 < center + width / 2 < 310
    assert percentile_window(np.full((4, 4), 7.0)) == (7.0, 1e-3)
    png = np.linspace(0.0, 1.0, 1000).reshape(25, 40)
    assert percentile_window(png)[1] == pytest.approx(0.99, abs=0.01)  # not stretched to a width of 1
    with pytest.raises(ValueError, match="low < high"):
        percentile_window(values, 60, 40)


def test_moving_the_window_changes_the_display_and_a_narrower_one_raises_contrast() -> None:
    image = ramp()
    middle, higher = display_pixels(image, 500, 1000), display_pixels(image, 700, 1000)
    assert middle.dtype == np.uint8 and middle.shape == image.values.shape
    assert higher.mean() < middle.mean() - 30  # a higher centre shows the same values darker
    narrow = display_pixels(image, 500, 200)
    near_450, near_550 = (int(np.argmin(np.abs(image.values - value))) for value in (450, 550))
    assert narrow.flat[near_550] - narrow.flat[near_450] > 4 * (int(middle.flat[near_550]) - middle.flat[near_450])


def test_function_argument_overrides_the_images_voi_function() -> None:
    image = ramp()
    assert not np.array_equal(display_pixels(image, 500, 200), display_pixels(image, 500, 200, "SIGMOID"))
    sigmoid = replace(image, function="SIGMOID")
    assert np.array_equal(display_pixels(sigmoid, 500, 200), display_pixels(image, 500, 200, "SIGMOID"))


def test_monochrome1_is_shown_inverted_and_the_invert_toggle_undoes_it(data_dir: Path) -> None:
    dataset = read_dicom(data_dir / "dicom" / "nema-rg1" / "RG1_UNCI.dcm")
    image = modality_image(dataset)
    assert image.inverted
    preset = window_presets(image, dataset)[0]
    assert preset == WindowPreset("Header 1", 15000.0, 30000.0, "LINEAR")
    shown = display_pixels(image, preset.center, preset.width)
    raw = display_pixels(replace(image, inverted=False), preset.center, preset.width)
    assert raw.std() > 10  # the header window shows structure, so the comparison below means something
    assert np.array_equal(shown, 255 - raw)
    assert np.array_equal(display_pixels(image, preset.center, preset.width, invert=True), raw)


def test_invert_toggle_on_a_monochrome2_image() -> None:
    image = ramp()
    assert np.array_equal(display_pixels(image, 500, 1000, invert=True), 255 - display_pixels(image, 500, 1000))


def test_zoom_crops_around_the_focus_and_stays_inside_the_image() -> None:
    pixels = np.arange(100 * 80).reshape(100, 80)
    assert np.array_equal(zoom(pixels, 1.0), pixels)
    assert np.array_equal(zoom(pixels, 2.0), pixels[25:75, 20:60])
    assert np.array_equal(zoom(pixels, 4.0, (0.0, 1.0)), pixels[:25, 60:])  # clamped at the top right corner
    assert np.array_equal(zoom(pixels, 4.0, (0.9, 0.1)), pixels[75:, :20])
    colour = np.zeros((100, 80, 3), np.uint8)
    assert zoom(colour, 2.5).shape == (40, 32, 3)
    for factor in (0.5, 0.0, float("nan")):
        with pytest.raises(ValueError, match="factor must be at least 1"):
            zoom(pixels, factor)


def test_attention_in_the_top_left_cell_lands_top_left_on_a_wide_image() -> None:
    grid = np.zeros((7, 7), np.float32)
    grid[0, 0] = 1.0
    heat = attention_on_image(grid, (160, 200))  # 20 rows of padding above and below in the 200 x 200 square
    assert heat.dtype == np.float32 and heat.shape == (160, 200)
    assert heat.max() == pytest.approx(1.0) and heat.min() >= 0
    row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
    assert row < 80 and col < 100
    assert heat[80:].max() == 0 and heat[:, 100:].max() == 0


def test_attention_in_the_padding_band_of_a_tall_image_is_cropped() -> None:
    grid = np.zeros((7, 7), np.float32)  # square of side 224: the image holds columns 80..143, cells are 32 wide
    grid[:, :2] = 1.0 / 14  # only on the left padding band (columns 0..63)
    assert attention_on_image(grid, (224, 64)).max() == pytest.approx(0.0, abs=1e-6)
    centre = np.zeros((7, 7), np.float32)
    centre[3, 3] = 1.0
    heat = attention_on_image(centre, (224, 64))
    row, col = np.unravel_index(int(np.argmax(heat)), heat.shape)
    assert abs(row - 112) <= 2 and abs(col - 32) <= 2  # the middle cell is the middle of the image
    with pytest.raises(ValueError, match="2-D"):
        attention_on_image(np.zeros(49), (224, 64))


def test_overlay_keeps_grey_where_cold_and_colours_where_hot() -> None:
    pixels = np.full((4, 6), 100, np.uint8)
    heat = np.zeros((4, 6), np.float32)
    heat[:, 3:] = 1.0
    blended = overlay(pixels, heat, opacity=1.0)
    assert blended.dtype == np.uint8 and blended.shape == (4, 6, 3)
    assert np.array_equal(blended[:, :3], np.full((4, 3, 3), 100, np.uint8))
    hot = np.asarray(matplotlib.colormaps["inferno"](1.0, bytes=True)[:3])
    assert np.array_equal(blended[0, 5], hot)
    half = overlay(pixels, heat, opacity=0.5)
    assert np.array_equal(half[0, 5], np.rint((100 + hot.astype(float)) / 2).astype(np.uint8))
    assert np.array_equal(overlay(pixels, heat, opacity=0.0), np.repeat(pixels[..., None], 3, axis=2))


def test_overlay_rejects_bad_opacity_and_mismatched_shapes() -> None:
    pixels = np.zeros((4, 6), np.uint8)
    for opacity in (-0.1, 1.5):
        with pytest.raises(ValueError, match="opacity must be between 0 and 1"):
            overlay(pixels, np.zeros((4, 6)), opacity)
    with pytest.raises(ValueError, match=r"\(4, 6\).*\(6, 4\)"):
        overlay(pixels, np.zeros((6, 4)), 0.5)


def test_colorbar_runs_from_the_top_colour_down_to_the_bottom_one() -> None:
    bar = colorbar(100, 8, "viridis")
    assert bar.dtype == np.uint8 and bar.shape == (100, 8, 3)
    viridis = matplotlib.colormaps["viridis"]
    assert np.array_equal(bar[0], np.tile(viridis(1.0, bytes=True)[:3], (8, 1)))
    assert np.array_equal(bar[-1, 0], viridis(0.0, bytes=True)[:3])
    assert np.array_equal(colorbar()[0, 0], matplotlib.colormaps["inferno"](1.0, bytes=True)[:3])
