"""Hostile uploads on the Ask page (issue 18): each gets an error box that names the file and the fix, never a
stack trace. The page's upload handler runs in AppTest with the real request preparer (de-identifier, decoders)
and no knowledge base: nothing is searched before an image is decoded."""

from __future__ import annotations

import copy
import io
import zlib

import pydicom
from streamlit.testing.v1 import AppTest

from reliability.hostile_images import _dicom_bytes, _png_chunk, deep_sequence


def _prepare_uploads(uploads: list[tuple[str, bytes]]) -> None:
    """The Ask page's handler for each upload, with an Assistant that only prepares requests."""
    from types import SimpleNamespace

    from medrag.config import Config
    from medrag.deid.dicom import DicomDeidentifier
    from medrag.pipeline.prepare import QueryPreparer
    from ui.views.ask import _prepare

    config = Config()
    assistant = SimpleNamespace(config=config, prepare=QueryPreparer(DicomDeidentifier(b"hostile-upload-test"),
                                                                     limits=config.limits))
    for name, payload in uploads:
        _prepare(assistant, payload, name, "", "")


def _bomb_png() -> bytes:
    header = (100_000).to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(bytes(4096)))
            + _png_chunk(b"IEND", b""))


def test_hostile_uploads_get_an_error_naming_the_file_not_a_traceback(dicom_study):
    _, payload = dicom_study
    study = pydicom.dcmread(io.BytesIO(payload))
    huge = copy.deepcopy(study)
    huge.Rows = huge.Columns = 65535
    uploads = {
        "huge.dcm": (_dicom_bytes(huge, huge.file_meta.TransferSyntaxUID), "max_image_pixels"),
        "deep.dcm": (payload + deep_sequence(3000, True, implicit=True), "max_dicom_depth"),
        "cut.dcm": (payload[:len(payload) // 2], "truncated"),
        "bomb.png": (_bomb_png(), "max_image_pixels"),
        "noise.png": (bytes(range(256)) * 8, "not a readable PNG/JPEG image"),
    }
    at = AppTest.from_function(_prepare_uploads, args=([(upload, data) for upload, (data, _) in uploads.items()],),
                               default_timeout=120).run()
    assert not at.exception, at.exception
    shown = [str(error.value).replace("\\", "") for error in at.error]
    assert len(shown) == len(uploads), shown
    for (upload, (_, fix)), message in zip(uploads.items(), shown, strict=True):
        assert message.startswith(f"{upload}: ") and fix in message, message
