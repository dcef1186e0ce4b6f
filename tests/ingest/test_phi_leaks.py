"""No PHI survives ingestion: not in Weaviate objects, its files or log, the image store, or our output.

DICOMs are built from real covid radiographs with every PHI-bearing tag filled (headers templated
from real IU DICOM metadata), each with a clinical note that repeats the identifiers. After ingest,
every planted value is searched for, case-insensitively, everywhere medrag could have put it.
"""

from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path

from phi_dicom import load_templates, make_phi_dicom

from medrag.deid.dicom import DicomDeidentifier
from medrag.deid.secrets import deid_key
from medrag.ingest.pipeline import Ingestor
from medrag.store import CASES
from reliability.artefacts import files_containing

CASES_TO_PLANT = 6
DATE = re.compile(r"\d{8}")  # DICOM DA values, as planted


def _needles(values: list[str]) -> set[str]:
    """Each planted value, and each part of a DICOM person name (``Family^Given``), lowercased.

    Other values are searched whole: their words alone ("Road") are common in real abstracts."""
    needles = set()
    for value in values:
        needles.add(value.lower())
        if "^" in value:
            needles.update(part.lower() for part in value.split("^"))
    return {needle for needle in needles if len(needle) > 3}


def _files_containing(root: Path, needles: set[str]) -> dict[str, list[str]]:
    """Any occurrence counts here, inside words too: stricter than the artefacts area's whole-word search."""
    return files_containing([root], needles, whole_words=False)


def test_planted_phi_is_nowhere_after_ingest(config, store, tenant, text_encoder, data_dir, tmp_path, caplog,
                                             capsys):
    caplog.set_level(logging.DEBUG)
    images = sorted((data_dir / "cxr" / "covid" / "images").glob("*.jpg"))[:CASES_TO_PLANT]
    inputs = tmp_path / "incoming"
    planted = [
        make_phi_dicom(image, template, inputs / f"study{i}.dcm", seed=i)
        for i, (image, template) in enumerate(zip(images, load_templates(data_dir, CASES_TO_PLANT), strict=True))
    ]
    values = [value for plant in planted for value in plant.values]
    notes = tmp_path / "notes.csv"
    with notes.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "clinical_notes", "finding"])
        for plant in planted:
            identifiers = ", ".join(value.replace("^", " ") for value in plant.values[:6])
            writer.writerow([plant.path.name, f"Seen with {identifiers}; productive cough, fever.", "Pneumonia"])

    summary = Ingestor(config, store, text_encoder=text_encoder, tenant=tenant, progress=False).images(
        [inputs], notes=notes
    )
    assert summary.ok and summary.written == CASES_TO_PLANT, summary.render()

    needles = _needles(values)
    raw_hits = _files_containing(inputs, needles)
    # Shifted dates are checked per patient (below): a patient's shifted date may equal another
    # patient's real date by chance, which reveals nothing; everything else is searched everywhere.
    dates = {needle for needle in needles if DATE.fullmatch(needle)}
    assert len(raw_hits) == CASES_TO_PLANT and all(len(found) > 10 for found in raw_hits.values()), (
        "control: the search must find the planted values in the raw input"
    )
    stored = store.client.collections.use(CASES).with_tenant(tenant).query.fetch_objects(limit=100)
    assert len(stored.objects) == CASES_TO_PLANT
    dumped = json.dumps([item.properties for item in stored.objects], default=str).lower()
    assert [needle for needle in needles if needle in dumped] == []
    assert all("cough" in item.properties["note"] for item in stored.objects), "the clinical content stays"

    assert _files_containing(config.image_dir, needles - dates) == {}
    assert _files_containing(store.server.data_dir, needles - dates) == {}  # objects, indexes, WAL, weaviate.log
    deidentifier = DicomDeidentifier(deid_key(config))
    by_patient = {item.properties["patient_key"]: item.properties for item in stored.objects}
    for plant in planted:
        properties = by_patient[deidentifier.pseudonym(plant.patient_id)]
        own = json.dumps(properties, default=str).encode() + (config.image_dir / properties["image_ref"]).read_bytes()
        own_dates = {value for value in plant.values if DATE.fullmatch(value)}
        assert own_dates and [date for date in own_dates if date.encode() in own] == []
    output = (summary.render() + caplog.text + "".join(capsys.readouterr())).lower()
    assert [needle for needle in needles if needle in output] == []
