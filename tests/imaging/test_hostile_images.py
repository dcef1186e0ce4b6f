"""Hostile and malformed PNG/JPEG (issue 18): decompression bombs, lying headers, random bytes, other formats."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from medrag.config import LimitsConfig
from medrag.imaging.radiograph import DEFAULT_LIMITS, ImageReadError, load_image_file
from reliability.hostile_images import Seed, _png_chunk, decode_image, guarded, hostile_image, image_seeds


@pytest.fixture(scope="module")
def seeds(data_dir: Path) -> list[Seed]:
    return image_seeds(data_dir)


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_fuzzed_images_decode_or_raise_the_clear_error(seeds, data):
    description, payload = data.draw(hostile_image(seeds), label="case")
    with guarded(description, DEFAULT_LIMITS):
        assert decode_image(payload, DEFAULT_LIMITS, description) in ("decoded", "refused")


def _bomb(width: int, height: int) -> bytes:
    """A valid greyscale PNG header declaring width x height, with a few rows of zeros: kilobytes on disk."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(bytes((width + 1) * 8), 9)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", rows)
            + _png_chunk(b"IEND", b""))


def _stream(data: bytes, name: str) -> io.BytesIO:
    stream = io.BytesIO(data)
    stream.name = name
    return stream


@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (8_000, 6_000), (7_000, 6_000)])
def test_decompression_bombs_are_refused_before_decompressing(width, height):
    data = _bomb(width, height)
    assert len(data) < 20_000
    with pytest.raises(ImageReadError, match="max_image_pixels") as error:
        load_image_file(_stream(data, "bomb.png"))
    assert "bomb.png" in str(error.value) and "MEDRAG_LIMITS_MAX_IMAGE_PIXELS" in str(error.value)


def test_the_pixel_and_size_limits_come_from_the_config(seeds):
    name, jpeg = seeds[0].name, seeds[0].data
    assert load_image_file(_stream(jpeg, name)).pixels.ndim == 2
    with pytest.raises(ImageReadError, match=r"\(512 x \d+ = [\d,]+ pixels"):
        load_image_file(_stream(jpeg, name), LimitsConfig(max_image_pixels=10_000))
    huge = _stream(jpeg + bytes(2**20), "padded.jpg")
    with pytest.raises(ImageReadError, match=r"padded\.jpg: the file is larger than 1 MB"):
        load_image_file(huge, LimitsConfig(max_image_mb=1))


def test_only_png_and_jpeg_are_decoded(tmp_path):
    grey = Image.fromarray(np.arange(64 * 64, dtype=np.uint8).reshape(64, 64))
    for suffix in ("tiff", "bmp", "gif"):
        path = tmp_path / f"image.{suffix}"
        grey.save(path)
        with pytest.raises(ImageReadError, match="not a readable PNG/JPEG image") as error:
            load_image_file(path)
        assert str(path) in str(error.value)
    grey.save(tmp_path / "image.png")
    np.testing.assert_allclose(load_image_file(tmp_path / "image.png").pixels, np.asarray(grey) / 255)


def test_a_jpeg_whose_header_lies_about_its_size_is_refused(seeds):
    name, jpeg = seeds[0].name, seeds[0].data
    start = jpeg.find(b"\xff\xc0")
    assert start > 0, "the seed is a baseline JPEG"
    lying = jpeg[:start + 5] + struct.pack(">HH", 65000, 65000) + jpeg[start + 9:]
    with pytest.raises(ImageReadError, match=r"4225000000 pixels.*max_image_pixels"):  # Pillow's bomb check fires first
        load_image_file(_stream(lying, name))
