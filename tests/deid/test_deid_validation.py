"""De-identification against the MIDI-B style answer keys of ``reliability.deid_validation`` (unit lane: no
Weaviate, no shared data): every required DICOM action, text recall per claimed category, clinical words kept."""

from __future__ import annotations

from pathlib import Path

import pytest

from medrag.config import Config
from medrag.deid.dicom import DicomDeidentifier
from medrag.deid.text import TextScrubber
from reliability import SUITES
from reliability.deid_validation import (
    ACTIONS,
    CLINICAL_SENTENCES,
    CLINICAL_WORDS_KEPT_REQUIRED,
    DATE_SHIFTED,
    PSEUDONYM,
    REMOVED,
    RETAINED,
    TEXT_CATEGORIES,
    TEXT_RECALL_REQUIRED,
    UID_REPLACED,
    Verdict,
    clinical_preservation,
    deidentify_like_ingest,
    make_dicom_set,
    make_notes,
    score_dicom,
    score_text,
    summarise_dicom,
    validate_dicom,
)


@pytest.fixture(scope="module")
def verdicts() -> list[Verdict]:
    """2 patients x 2 studies x 2 images: enough for every cross-file requirement."""
    return validate_dicom(patients=2, studies=2, images=2, seed=7)


@pytest.fixture(scope="module")
def scrubber() -> TextScrubber:
    return TextScrubber()


def test_the_key_covers_every_phi_bearing_place():
    files, key = make_dicom_set(2, 2, 2, seed=7)
    assert len(files) == 8 and len({f.patient for f in files}) == 2
    assert {e.vr for e in key} >= {"PN", "LO", "SH", "DA", "DT", "TM", "UI", "AS", "AE", "CS", "ST", "LT", "UT",
                                   "IS", "DS", "OB", "UN", "OW", "SQ"}
    assert {e.action for e in key} == set(ACTIONS)
    assert any(len(e.location) >= 7 for e in key), "three levels of nested sequences"
    assert any(e.location[-1] >> 16 in (0x6000, 0x6002) for e in key), "overlays"
    assert any(e.location[-1] >> 16 == 0x5000 for e in key), "curves"
    assert any(e.location[-1] >> 16 & 1 and e.location[-1] & 0xFFFF == 0x0010 for e in key), "private creators"
    assert {e.attribute for e in key if e.meta} >= {
        "file meta.MediaStorageSOPInstanceUID", "file meta.ImplementationVersionName",
        "file meta.SourceApplicationEntityTitle"}
    assert any("Annotation" in e.attribute for e in key)


def test_every_required_dicom_action_is_correct(verdicts):
    failures = [f"{v.expectation.file} {v.expectation.attribute}: {v.expectation.action} "
                f"({v.expectation.standard}), found {v.found[:40]}" for v in verdicts if not v.correct]
    assert failures == []
    summary = summarise_dicom(verdicts)
    assert summary["all"]["correct"] == summary["all"]["required"] > 1000
    assert all(summary[action]["required"] > 0 for action in ACTIONS)


def test_the_dicom_score_fails_a_deidentifier_that_does_nothing():
    """The key is not vacuous: an identity de-identifier gets only the retained attributes right."""
    files, key = make_dicom_set(2, 2, 2, seed=7)
    outputs = {f.name: deidentify_like_ingest(lambda dataset: dataset, f.data) for f in files}
    summary = summarise_dicom(score_dicom(outputs, key))
    assert summary[RETAINED]["correct"] == summary[RETAINED]["required"]
    for action in (REMOVED, DATE_SHIFTED, UID_REPLACED, PSEUDONYM):
        assert summary[action]["correct"] == 0, action


def test_the_dicom_score_catches_inconsistency_across_files():
    """De-identifying each file with its own key breaks every cross-file requirement: one new UID per original,
    one date offset and one pseudonym per patient."""
    files, key = make_dicom_set(2, 2, 2, seed=7)
    outputs = {f.name: deidentify_like_ingest(DicomDeidentifier(f.name.encode()), f.data) for f in files}
    summary = summarise_dicom(score_dicom(outputs, key))
    for action in (UID_REPLACED, PSEUDONYM, DATE_SHIFTED):
        assert summary[action]["correct"] < summary[action]["required"], action


def test_text_recall_per_claimed_category(scrubber):
    notes = make_notes(300, seed=11)
    score = score_text(notes, lambda text: scrubber(text).text)
    for category in TEXT_CATEGORIES:
        assert score.planted[category] >= 25, category
        assert score.recall(category) >= TEXT_RECALL_REQUIRED, (category, score.misses[category])
    assert score.other_words_kept / score.other_words >= CLINICAL_WORDS_KEPT_REQUIRED


def test_text_score_fails_a_scrubber_that_does_nothing():
    score = score_text(make_notes(30, seed=11), lambda text: text)
    assert all(score.recall(category) == 0 for category in TEXT_CATEGORIES if score.planted[category])


def test_clinical_terms_are_kept(scrubber):
    kept, changed = clinical_preservation(lambda text: scrubber(text).text)
    assert kept >= CLINICAL_WORDS_KEPT_REQUIRED
    assert changed <= len(CLINICAL_SENTENCES) * (1 - CLINICAL_WORDS_KEPT_REQUIRED)


def test_notes_are_seeded_and_varied():
    first, again = make_notes(300, seed=11), make_notes(300, seed=11)
    assert first == again
    assert len({note.style for note in first}) == 3
    assert len({note.text for note in first}) == 300


def test_registered_area_reports_and_writes_the_table(tmp_path: Path):
    figures = SUITES["deid"](Config(), tmp_path, True)
    assert figures["passed"], figures["headline"]
    assert figures["headline"]["de-identification actions correct"].endswith("(100%)")
    assert set(figures["headline"]["text PHI recall per category"]) == set(TEXT_CATEGORIES)
    header = (tmp_path / "deid_attributes.csv").read_text().splitlines()[0]
    assert header.startswith("attribute,vr,standard,action,correct,required")
