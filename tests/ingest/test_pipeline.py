"""Ingestion end to end on real files into the real Weaviate server."""

from __future__ import annotations

import json
import shutil

import pydicom
import pytest

from knowledge_sources import DEMO_DIR
from medrag.ingest.pipeline import Ingestor
from medrag.store import ARTICLES, CASES, REPORTS


@pytest.fixture
def ingestor(config, store, tenant, text_encoder) -> Ingestor:
    """Text vectors only: the joint vector has its own tests (tests/encode/test_joint_wiring.py)."""
    return Ingestor(config, store, text_encoder=text_encoder, joint=False, tenant=tenant, progress=False)


@pytest.fixture
def pubmedqa_subset(tmp_path, pubmedqa):
    """40 real PubMedQA records in their own file (the loader takes any file in that format)."""
    path = tmp_path / "pubmedqa_subset.json"
    path.write_text(json.dumps(dict(list(pubmedqa.items())[:40])))
    return path


def test_pubmedqa_ingest_then_rerun_adds_nothing(ingestor, pubmedqa_subset, store, tenant, pubmedqa):
    first = ingestor.pubmed([pubmedqa_subset])
    assert first.ok, first.render()
    assert (first.read, first.written, first.added, first.unchanged) == (40, 40, 40, 0)
    second = ingestor.pubmed([pubmedqa_subset])
    assert (second.read, second.written, second.added, second.unchanged) == (40, 0, 0, 40)
    assert store.count(ARTICLES, tenant=tenant) == 40

    pmid, entry = next(iter(pubmedqa.items()))
    stored = store.fetch(ARTICLES, pmid, tenant=tenant).properties
    assert stored["source"] == "pubmedqa"
    assert stored["sentences"][0].startswith(f"{entry['LABELS'][0]}: ")
    assert entry["CONTEXTS"][0][:60] in stored["text"]
    assert "final_decision" not in json.dumps(stored) and entry["LONG_ANSWER"] not in stored["text"]


def test_changed_record_is_rewritten_not_duplicated(ingestor, pubmedqa_subset, store, tenant):
    ingestor.pubmed([pubmedqa_subset])
    records = json.loads(pubmedqa_subset.read_text())
    pmid = next(iter(records))
    records[pmid]["CONTEXTS"][0] = "A corrected first section. " + records[pmid]["CONTEXTS"][0]
    pubmedqa_subset.write_text(json.dumps(records))
    again = ingestor.pubmed([pubmedqa_subset])
    assert (again.written, again.added, again.unchanged) == (1, 0, 39)
    assert store.fetch(ARTICLES, pmid, tenant=tenant).properties["text"].startswith("A corrected first section.")


def test_reports_are_scrubbed_sectioned_and_searchable(ingestor, store, tenant, text_encoder):
    summary = ingestor.reports([DEMO_DIR / "iu-reports"])
    assert summary.read == 200
    assert summary.written + len(summary.skipped) + len(summary.failed) == 200
    assert summary.written >= 190
    question = "cardiomegaly with pulmonary edema"
    hits = store.hybrid(REPORTS, question, text_encoder.encode([question])[0], limit=5, tenant=tenant)
    assert hits and any("cardiomegaly" in hit.properties["text"].lower() for hit in hits)
    sections = {sentence.split(":")[0] for hit in hits for sentence in hit.properties["sentences"]}
    assert sections <= {"INDICATION", "COMPARISON", "FINDINGS", "IMPRESSION"}


def test_images_with_notes_and_dicoms_become_deidentified_cases(ingestor, config, store, tenant):
    notes = ingestor.images([DEMO_DIR / "covid" / "metadata.csv"])
    assert notes.ok and notes.written == 8, notes.render()
    dicoms = ingestor.images([DEMO_DIR / "dicom"])
    assert dicoms.ok and dicoms.written == 3, dicoms.render()
    assert store.count(CASES, tenant=tenant) == 11

    stored = store.client.collections.use(CASES).with_tenant(tenant).query.fetch_objects(limit=50).objects
    assert sorted(item.properties["source"] for item in stored) == ["covid"] * 8 + ["dicom"] * 3
    for item in stored:
        properties = item.properties
        image = config.image_dir / properties["image_ref"]
        assert image.is_file()
        if properties["source"] == "dicom":
            kept = pydicom.dcmread(image)
            assert kept.PatientIdentityRemoved == "YES"
            assert properties["source_id"] == kept.SOPInstanceUID
            assert properties["patient_key"] == kept.PatientID
            assert properties["modality"] in {"CR", "DX"}
        else:
            assert properties["note"] and properties["finding"] and properties["patient_key"]


def test_bad_records_are_reported_and_the_rest_goes_on(ingestor, tmp_path, store, tenant):
    folder = tmp_path / "dicoms"
    shutil.copytree(DEMO_DIR / "dicom", folder)
    good = sorted(folder.iterdir())[0].read_bytes()
    (folder / "truncated.dcm").write_bytes(good[: len(good) // 3])
    summary = ingestor.images([folder])
    assert not summary.ok
    assert summary.written == 3
    assert [origin for origin, _ in summary.failed] == [str(folder / "truncated.dcm")]
    assert f"failed: {folder / 'truncated.dcm'}: the DICOM file is truncated" in summary.render()
    assert store.count(CASES, tenant=tenant) == 3


def test_ingested_images_are_read_within_the_configured_limits(config, store, tenant, text_encoder, data_dir):
    from knowledge_sources.records import SourceRecord
    from medrag.sources.builtin import CASE_SOURCE

    tight = config.replace(limits={"max_image_pixels": 100})
    ingestor = Ingestor(tight, store, text_encoder=text_encoder, joint=False, tenant=tenant, progress=False)
    assert ingestor.context.limits == tight.limits
    study = data_dir / "dicom" / "nema-rg1" / "RG1_UNCI.dcm"
    record = SourceRecord("case", "rg1", "dicom", {}, study.name, image_path=study)
    with pytest.raises(ValueError, match="MAX_IMAGE_PIXELS"):
        CASE_SOURCE.prepare(ingestor.context)(record)
