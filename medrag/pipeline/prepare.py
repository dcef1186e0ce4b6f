"""A clinician's request, de-identified before anything else sees it.

The image may be a file path, bytes, an open stream or a pydicom ``Dataset``: DICOM goes through the
same PS3.15 de-identification as ingestion (and must be a radiograph); PNG/JPEG carry no header to
clean. The question and the note are scrubbed of PHI, with the DICOM's own patient name added to
the names to look for. Only the cleaned request leaves this module.

The question and the note come from outside (issue 18, hostile input): each is refused with ``RequestRejected``
when longer than ``LimitsConfig.max_query_chars`` (before the scrubber and the encoders spend time on it) or when
it is not valid Unicode text (lone surrogates, which no encoder, log or JSON writer can take).
"""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import BinaryIO

from pydicom.dataset import Dataset

from medrag.config import LimitsConfig
from medrag.deid.dicom import DicomDeidentifier, patient_name_words
from medrag.deid.text import TextScrubber
from medrag.imaging.radiograph import (
    Radiograph,
    check_pixel_format,
    check_radiograph,
    load_image_file,
    read_dicom,
    to_radiograph,
)
from medrag.types import QueryInput

ImageInput = str | Path | bytes | BinaryIO | Dataset | Radiograph
_DICOM_MAGIC = (128, b"DICM")


def is_dicom(payload: bytes) -> bool:
    """True for DICOM Part 10 bytes (the DICM marker after the preamble)."""
    offset, magic = _DICOM_MAGIC
    return payload[offset:offset + len(magic)] == magic


class RequestRejected(ValueError):
    """A question or note that is refused as given; the message names the field and the fix."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_text(field: str, text: str | None, limits: LimitsConfig) -> None:
    """Refuse a question or note that is too long or not valid Unicode; ``RequestRejected`` names ``field``."""
    if text is None:
        return
    if not isinstance(text, str):
        raise RequestRejected(field, f"the {field} must be text, not {type(text).__name__}")
    if len(text) > limits.max_query_chars:
        raise RequestRejected(field, f"the {field} has {len(text)} characters, over the limit of "
                              f"{limits.max_query_chars}; shorten it, or raise MEDRAG_LIMITS_MAX_QUERY_CHARS")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise RequestRejected(field, f"the {field} is not valid Unicode text (an unpaired surrogate at character "
                              f"{error.start}); send it as UTF-8") from None


class QueryPreparer:
    def __init__(self, deidentifier: DicomDeidentifier, scrubber: TextScrubber | None = None,
                 limits: LimitsConfig | None = None) -> None:
        self.deidentifier = deidentifier
        self.scrubber = scrubber or TextScrubber()
        self.limits = limits or LimitsConfig()

    def __call__(self, question: str | None = None, note: str | None = None,
                 image: ImageInput | None = None) -> QueryInput:
        check_text("question", question, self.limits)
        check_text("note", note, self.limits)
        dicom = self._dicom(image)
        radiograph = image if isinstance(image, Radiograph) else None
        names: list[str] = []
        if dicom is not None:
            names = patient_name_words(dicom)
            check_radiograph(dicom, origin="query image")
            check_pixel_format(dicom, self.limits, origin="query image")  # refused before de-identification
            dicom = self.deidentifier(dicom, origin="query image")
            radiograph = to_radiograph(dicom, self.limits)
        elif image is not None and radiograph is None:
            radiograph = load_image_file(io.BytesIO(image) if isinstance(image, bytes) else image, self.limits)
        scrubber = TextScrubber(extra_names=names) if names else self.scrubber
        counts: dict[str, int] = {}
        texts = []
        for text in (question or "", note or ""):
            result = scrubber(text)
            texts.append(result.text.strip())
            for kind, count in result.counts.items():
                counts[kind] = counts.get(kind, 0) + count
        if not texts[0] and not texts[1] and radiograph is None:
            raise ValueError("empty query: give a question, a note or an image")
        return QueryInput(texts[0], texts[1], radiograph, dicom, counts)

    def _dicom(self, image: ImageInput | None) -> Dataset | None:
        """The image as a DICOM dataset (a copy: the caller's object is never changed), or None if not DICOM."""
        if isinstance(image, Dataset):
            return copy.deepcopy(image)
        if isinstance(image, bytes):
            return read_dicom(io.BytesIO(image), self.limits) if is_dicom(image) else None
        if isinstance(image, (str, Path)):
            path = Path(image)
            if not path.is_file():
                raise FileNotFoundError(f"query image {path} does not exist; check the path")
            with path.open("rb") as handle:
                head = handle.read(132)
            if is_dicom(head) or path.suffix.lower() in (".dcm", ".dicom"):
                return read_dicom(path, self.limits)
            return None
        return None
