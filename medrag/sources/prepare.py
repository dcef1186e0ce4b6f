"""Turn a loaded source record into the object we store: de-identified, sectioned, split into sentences.

Published literature carries no patient data and is stored as published. Reports and notes go
through the text scrubber; DICOM goes through the PS3.15 de-identifier before its pixels or any
header value is used. Images are kept de-identified under ``config.image_dir``.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image

from knowledge_sources.records import SourceRecord
from medrag.config import LimitsConfig
from medrag.deid.dicom import DicomDeidentifier, patient_name_words
from medrag.deid.text import TextScrubber
from medrag.imaging.radiograph import (
    DEFAULT_LIMITS,
    Radiograph,
    check_radiograph,
    load_image_file,
    read_dicom,
    to_radiograph,
)
from medrag.sources.names import ARTICLES, CASES, REPORTS
from medrag.sources.registry import Prepared, object_uuid
from medrag.text.sentences import split_sentences

REPORT_SECTIONS = ("indication", "comparison", "findings", "impression")
OLDEST_REPORTED_AGE = 90  # HIPAA Safe Harbor: ages over 89 are aggregated into one "90 or older" group


def _labelled_sentences(sections: list[tuple[str, str]]) -> list[str]:
    return [f"{label}: {sentence}" if label else sentence
            for label, text in sections if text for sentence in split_sentences(text)]


def _never_empty(sentences: list[str], text: str) -> list[str]:
    """Every object has at least one sentence (each gets a vector and can be cited): else the text is one."""
    return sentences or [text]


def prepare_article(record: SourceRecord) -> Prepared:
    fields = record.fields
    sections = [(section.get("label") or "", section.get("text") or "") for section in fields.get("sections") or []]
    abstract = " ".join(text for _, text in sections if text)
    if not abstract.strip():
        raise ValueError(f"{record.origin}: empty abstract; nothing to store")
    title = fields.get("title") or ""
    properties = {
        key: fields.get(key) for key in ("title", "journal", "year", "mesh", "publication_types") if fields.get(key)
    }
    properties |= {
        "source": record.source,
        "modality": "text",
        "text": f"{title}\n{abstract}".strip(),
    }
    properties["sentences"] = _never_empty(
        ([f"TITLE: {title}"] if title else []) + _labelled_sentences(sections), properties["text"])
    return Prepared(ARTICLES, record.source_id, properties)


def prepare_report(record: SourceRecord, scrubber: TextScrubber) -> Prepared:
    fields = record.fields
    sections = {name: scrubber(fields.get(name) or "").text.strip() for name in REPORT_SECTIONS}
    if not (sections["findings"] or sections["impression"]):
        raise ValueError(f"{record.origin}: report has neither findings nor impression")
    properties = {key: fields.get(key) for key in ("year", "mesh", "image_ids") if fields.get(key)}
    properties |= {name: text for name, text in sections.items() if text}
    properties |= {
        "source": record.source,
        "modality": "text",
        "text": "\n".join(f"{name.upper()}: {text}" for name, text in sections.items() if text),
    }
    properties["sentences"] = _never_empty(
        _labelled_sentences([(name.upper(), text) for name, text in sections.items()]), properties["text"])
    return Prepared(REPORTS, record.source_id, properties)


def _age(value: Any) -> int | None:
    """Age in years from an int or a DICOM age string (``065Y``), capped at 90 (HIPAA)."""
    if value in (None, ""):
        return None
    text = str(value).strip().upper()
    if text[-1:] in ("D", "W", "M"):  # days/weeks/months old: under one year
        return 0
    years = int(float(text.rstrip("Y")))
    return min(years, OLDEST_REPORTED_AGE)


def _write_atomically(path: Path, payload: bytes) -> None:
    """A reader never sees half an image: write beside, then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False) as handle:
        handle.write(payload)
    os.replace(handle.name, path)


def _png_bytes(image: Radiograph) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.round(image.pixels * 255).astype(np.uint8), mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


class CasePreparer:
    """Imaging cases: de-identify the DICOM (or read the image), scrub the note, keep the clean image."""

    def __init__(self, deidentifier: DicomDeidentifier, scrubber: TextScrubber, image_dir: Path, tenant: str,
                 limits: LimitsConfig = DEFAULT_LIMITS) -> None:
        self.limits = limits
        """Checked before any pixel is decoded, as for a question's image (``[limits]``)."""
        self.deidentifier = deidentifier
        self.scrubber = scrubber
        self.image_dir = image_dir
        self.tenant = tenant

    def __call__(self, record: SourceRecord) -> Prepared:
        if record.image_path is None:
            raise ValueError(f"{record.origin}: case has no image file")
        if record.source == "dicom":
            return self._from_dicom(record)
        image = load_image_file(record.image_path, self.limits)
        fields = record.fields
        properties = self._common(record.source, fields, self.scrubber)
        patient = fields.get("patient_id")
        if patient not in (None, ""):
            properties["patient_key"] = self.deidentifier.pseudonym(str(patient))
        properties["image_ref"] = self._keep(record.source_id, ".png", _png_bytes(image))
        return Prepared(CASES, record.source_id, properties, image)

    def _from_dicom(self, record: SourceRecord) -> Prepared:
        original = read_dicom(record.image_path, self.limits)
        check_radiograph(original, origin=record.origin)
        names = patient_name_words(original)
        clean = self.deidentifier(original, origin=record.origin)
        image = to_radiograph(clean, self.limits)
        source_id = str(clean.SOPInstanceUID)
        fields = {
            "modality": image.metadata.get("modality"),
            "view": image.metadata.get("view_position"),
            "body_part": image.metadata.get("body_part"),
            "sex": clean.get("PatientSex") or None,
            "age": clean.get("PatientAge") or None,
            "year": int(str(clean.StudyDate)[:4]) if clean.get("StudyDate") else None,
            **{key: value for key, value in record.fields.items() if value not in (None, "")},
        }
        properties = self._common(record.source, fields, TextScrubber(extra_names=names) if names else self.scrubber)
        properties["patient_key"] = str(clean.PatientID)
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, clean, enforce_file_format=True)
        properties["image_ref"] = self._keep(source_id, ".dcm", buffer.getvalue())
        return Prepared(CASES, source_id, properties, image)

    def _common(self, source: str, fields: dict[str, Any], scrubber: TextScrubber) -> dict[str, Any]:
        note = scrubber(fields.get("note") or "").text.strip()
        properties = {
            key: fields.get(key) for key in ("finding", "view", "body_part", "sex", "modality", "license", "year")
            if fields.get(key) not in (None, "")
        }
        age = _age(fields.get("age"))
        if age is not None:
            properties["age"] = age
        described = ", ".join(str(properties[key]) for key in ("modality", "view", "body_part") if key in properties)
        summary = f"Finding: {properties['finding']}." if "finding" in properties else ""
        text = " ".join(part for part in (note, summary, f"Image: {described}." if described else "") if part)
        finding = [f"FINDING: {properties['finding']}"] if "finding" in properties else []
        properties |= {
            "note": note,
            "text": text,
            # The note's sentences, then the finding: a case without a note still has a citable sentence.
            "sentences": _never_empty(split_sentences(note) + finding, text),
            "source": source,
        }
        return properties

    def _keep(self, source_id: str, suffix: str, payload: bytes) -> str:
        """Store the de-identified image; return its reference relative to the image dir."""
        reference = f"{self.tenant}/{object_uuid(CASES, source_id)}{suffix}"
        _write_atomically(self.image_dir / reference, payload)
        return reference
