"""The VQA-RAD and IU report readers: typed items with canonical group keys, chest pairs, named errors."""

from __future__ import annotations

import json

import pytest

from knowledge_sources import DEMO_DIR
from medrag.datasets.iu_reports import read_iu_reports, report_text_pairs
from medrag.datasets.vqa_rad import read_vqa_rad, vqa_rad_pairs

pytestmark = pytest.mark.unit

QUESTIONS = [
    {"qid": 1, "image_name": "chest1.jpg", "image_organ": "CHEST", "question": "Is there a pneumothorax?",
     "answer": "No"},
    {"qid": 2, "image_name": "chest1.jpg", "image_organ": "CHEST", "question": "How many ribs are fractured",
     "answer": 2},
    {"qid": 3, "image_name": "head1.jpg", "image_organ": "HEAD", "question": "Is this a CT?", "answer": "yes"},
    {"qid": 4, "image_name": "chest2.jpg", "image_organ": "CHEST, ABD", "question": "Is the heart big?",
     "answer": "yes"},
]


@pytest.fixture
def vqa_file(tmp_path):
    (tmp_path / "images").mkdir()
    for name in ("chest1.jpg", "head1.jpg"):
        (tmp_path / "images" / name).write_bytes(b"jpeg")
    path = tmp_path / "questions.json"
    path.write_text(json.dumps(QUESTIONS))
    return path


def test_vqa_rad_questions_are_typed_with_the_image_as_group(vqa_file):
    questions = read_vqa_rad(vqa_file)
    assert [q.group for q in questions] == ["vqa-rad:chest1.jpg", "vqa-rad:chest1.jpg", "vqa-rad:head1.jpg",
                                            "vqa-rad:chest2.jpg"]
    assert questions[1].answer == "2", "numeric answers are read as text"
    assert [q.is_chest for q in questions] == [True, True, False, True]
    assert questions[0].image_path == vqa_file.parent / "images" / "chest1.jpg"


def test_vqa_rad_pairs_join_a_chest_images_questions_when_the_image_exists(vqa_file):
    pairs = vqa_rad_pairs(vqa_file)
    assert len(pairs) == 1, "the head image is not chest, chest2.jpg is not on disk"
    assert pairs[0].text == "Is there a pneumothorax? No. How many ribs are fractured? 2."
    assert pairs[0].group == "vqa-rad:chest1.jpg" and pairs[0].source == "vqa-rad"


def test_a_bad_vqa_rad_item_is_named(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([QUESTIONS[0], {"image_name": "x.jpg", "question": "Is it?", "answer": " "}]))
    with pytest.raises(ValueError, match=r"bad\.json: item 1: field 'answer' is missing or empty"):
        read_vqa_rad(path)
    path.write_text(json.dumps({"image_name": "x.jpg"}))
    with pytest.raises(ValueError, match=r"bad\.json: expected a JSON list"):
        read_vqa_rad(path)


def test_iu_reports_have_their_report_id_as_group_and_give_findings_impression_pairs():
    reports = read_iu_reports([DEMO_DIR / "iu-reports"])
    assert len(reports) > 100 and len({report.report_id for report in reports}) == len(reports)
    assert all(report.group == f"iu:{report.report_id}" for report in reports)
    assert any(report.indication == "Positive TB test" for report in reports)
    pairs = report_text_pairs([DEMO_DIR / "iu-reports"], limit=5)
    assert len(pairs) == 5 and all(findings and impression for findings, impression in pairs)
