"""The VQA-RAD suite's question filter and how an answer's decision becomes yes, no or no answer."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from evaluation.vqa import NO_ANSWER, _given, closed_chest_questions


@pytest.mark.unit
def test_only_closed_chest_questions_with_an_image_are_scored(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "chest.jpg").write_bytes(b"jpeg")
    items = [
        {"image_name": "chest.jpg", "image_organ": "CHEST", "question": "Is there a pneumothorax?", "answer": "No"},
        {"image_name": "chest.jpg", "image_organ": "CHEST", "question": "Where is the mass?", "answer": "left apex"},
        {"image_name": "head.jpg", "image_organ": "HEAD", "question": "Is there a bleed?", "answer": "yes"},
        {"image_name": "missing.jpg", "image_organ": "CHEST", "question": "Is the heart big?", "answer": "yes"},
    ]
    (tmp_path / "any-name.json").write_text(json.dumps(items))
    [question] = closed_chest_questions(tmp_path / "any-name.json")
    assert question.question == "Is there a pneumothorax?" and question.answer == "No"


@pytest.mark.unit
def test_maybe_abstention_and_no_decision_are_no_answer():
    def answer(label: str | None, abstained: bool = False) -> SimpleNamespace:
        return SimpleNamespace(decision=None if label is None else SimpleNamespace(label=label, abstained=abstained))

    assert _given(answer("yes")) == "yes" and _given(answer("no")) == "no"
    assert {_given(answer("maybe")), _given(answer("yes", abstained=True)), _given(answer(None))} == {NO_ANSWER}
