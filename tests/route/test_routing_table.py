"""Intents are rows of the routing table: the image-only intent and each intent's cue words come from it."""

from __future__ import annotations

import pytest

from medrag.route.table import RoutingTable, RoutingTableError

ROWS = {
    "questions": {"sources": {"PubmedArticle": {}}, "models": {"generator": "extractive"}},
    "pictures": {"sources": {"RadiologyReport": {"alpha": 0.3}}, "cues": "imaging"},
}


def test_the_packaged_table_names_its_image_only_intent():
    assert RoutingTable.load().image_only_intent == "imaging"


def test_without_image_only_intent_the_first_row_searching_a_joint_source_takes_images():
    table = RoutingTable.from_dict({"intents": ROWS})
    assert table.image_only_intent == "pictures" and table.intents["pictures"].cues == "imaging"


def test_a_table_naming_an_unknown_intent_or_cue_list_says_which():
    with pytest.raises(RoutingTableError, match="image_only_intent 'x' is not an intent"):
        RoutingTable.from_dict({"intents": ROWS, "image_only_intent": "x"})
    with pytest.raises(RoutingTableError, match=r"intents.questions.cues: 'words' is not a cue-word list"):
        RoutingTable.from_dict({"intents": {**ROWS, "questions": {**ROWS["questions"], "cues": "words"}}})
