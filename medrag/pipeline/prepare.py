"""A clinician's request, de-identified before anything else sees it.

The image may be a file path, bytes, an open stream or a pydicom ``Dataset``: DICOM goes through the
same PS3.15 de-identification as ingestion (and must be a radiograph); PNG/JPEG carry no header to
clean. The question and the note are scrubbed of PHI, with the DICOM's own patient name added to
the names to look for. Only the cleaned request leaves this module.
"""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import BinaryIO

from pydicom.dataset import Dataset

from medrag.deid.dicom import DicomDeidentifier, patient_name_words
from medrag.deid.text import TextScrubber
from medrag.imaging.radiograph import Radiograph, check_radiograph, load_image_file, read_dicom, to_radiograph
from medrag.types import QueryInput

ImageInput = str | Path | bytes | BinaryIO | Dataset | Radiograph
_DICOM_MAGIC = (128, b"DICM")


def is_dicom(payload: bytes) -> bool:
    """True for DICOM Part 10 bytes (the DICM marker after the preamble)."""
    offset, magic = _DICOM_MAGIC
    return payload[offset:offset + len(magic)] == magic


class QueryPreparer:
    def __init__(self, deidentifier: DicomDeidentifier, scrubber: TextScrubber | None = None) -> None:
        self.deidentifier = deidentifier
        self.scrubber = scrubber or TextScrubber()

    def __call__(self, question: str | None = None, note: str | None = None,
                 image: ImageInput | None = None) -> QueryInput:
        dicom = self._dicom(image)
        radiograph = image if isinstance(image, Radiograph) else None
        names: list[str] = []
        if dicom is not None:
            names = patient_name_words(dicom)
            check_radiograph(dicom, origin="query image")
            dicom = self.deidentifier(dicom, origin="query image")
            radiograph = to_radiograph(dicom)
        elif image is not None and radiograph is None:
            radiograph = load_image_file(io.BytesIO(image) if isinstance(image, bytes) else image)
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

    @staticmethod
    def _dicom(image: ImageInput | None) -> Dataset | None:
        """The image as a DICOM dataset (a copy: the caller's object is never changed), or None if not DICOM."""
        if isinstance(image, Dataset):
            return copy.deepcopy(image)
        if isinstance(image, bytes):
            return read_dicom(io.BytesIO(image)) if is_dicom(image) else None
        if isinstance(image, (str, Path)):
            path = Path(image)
            if not path.is_file():
                raise FileNotFoundError(f"query image {path} does not exist; check the path")
            with path.open("rb") as handle:
                head = handle.read(132)
            return read_dicom(path) if is_dicom(head) or path.suffix.lower() in (".dcm", ".dicom") else None
        return None
