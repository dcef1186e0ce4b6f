"""Named group splits: stable, one side per group, the shares they promise, and the card record round trip."""

from __future__ import annotations

import pytest

from medrag.datasets.splits import (
    DEFAULT_SPLIT,
    MEDRAG_V1,
    PARTS,
    Split,
    card_split,
    members_sha256,
    named_split,
)

pytestmark = pytest.mark.unit


class Grouped:
    def __init__(self, group: str, name: str) -> None:
        self.group, self.name = group, name


def test_the_default_split_is_medrag_v1_with_seventy_ten_twenty():
    assert DEFAULT_SPLIT is MEDRAG_V1 is named_split("medrag-v1")
    assert (MEDRAG_V1.fractions, MEDRAG_V1.seed) == ((0.7, 0.1), 0)


def test_assignments_are_pinned_so_a_published_split_never_moves_a_patient():
    """Recorded when medrag-v1 was published: a change to the hash would silently re-shuffle every model's test set."""
    pinned = {"pubmedqa:1": "train", "pubmedqa:2": "test", "pubmedqa:5": "validation", "pubmedqa:7": "validation",
              "pubmedqa:10808977": "train", "vqa-rad:synpic54610.jpg": "train", "iu:1": "train"}
    assert {key: MEDRAG_V1.part(key) for key in pinned} == pinned


def test_a_group_is_on_one_side_whatever_else_the_data_holds():
    items = [Grouped(f"covid:patient-{i % 97}", f"image-{i}") for i in range(600)]
    parts = MEDRAG_V1.divide(items)
    sides = [{item.group for item in part} for part in parts]
    assert sum(map(len, parts)) == len(items)
    assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
    alone = MEDRAG_V1.divide(items[::7])  # a subset of the file: each group keeps its side
    assert all({item.group for item in part} <= side for part, side in zip(alone, sides, strict=True))


def test_the_shares_follow_the_fractions():
    members = MEDRAG_V1.members(f"pubmedqa:{pmid}" for pmid in range(20_000))
    shares = [len(members[name]) / 20_000 for name in PARTS]
    assert shares == pytest.approx([0.7, 0.1, 0.2], abs=0.015)
    other = Split("other", (0.7, 0.1), 1).members(f"pubmedqa:{pmid}" for pmid in range(20_000))
    assert other["test"] != members["test"], "another seed is another split"


def test_describe_records_counts_and_the_hash_of_sorted_members():
    items = [Grouped("covid:a", "1"), Grouped("covid:a", "2"), Grouped("pubmedqa:2", "3"), Grouped("iu:9", "4")]
    record = MEDRAG_V1.describe(items)
    members = MEDRAG_V1.members(item.group for item in items)
    assert record["name"] == "medrag-v1" and record["fractions"] == [0.7, 0.1] and record["seed"] == 0
    for name in PARTS:
        assert record["parts"][name]["groups"] == len(members[name])
        assert record["parts"][name]["sha256"] == members_sha256(members[name])
    assert sum(part["items"] for part in record["parts"].values()) == len(items)
    assert members_sha256(["b", "a", "a"]) == members_sha256(["a", "b"]) != members_sha256(["a"])


def test_a_card_gives_back_its_split_and_a_wrong_record_is_named():
    card = {"split": MEDRAG_V1.describe([Grouped("pubmedqa:1", "x")])}
    assert card_split(card, "card.json") == MEDRAG_V1
    with pytest.raises(ValueError, match=r"old/card\.json: the model card records no named split.*retrain"):
        card_split({"split": "by patient"}, "old/card.json")
    tampered = {"split": {**card["split"], "fractions": [0.6, 0.1]}}
    with pytest.raises(ValueError, match=r"card\.json: split 'medrag-v1' is recorded with fractions \(0\.6, 0\.1\)"):
        card_split(tampered, "card.json")
    custom = {"split": {"name": "tiny", "fractions": [0.5, 0.25], "seed": 3}}
    assert card_split(custom, "card.json") == Split("tiny", (0.5, 0.25), 3)


def test_bad_names_and_fractions_are_refused():
    with pytest.raises(ValueError, match="unknown split 'v0'; known splits: medrag-v1"):
        named_split("v0")
    with pytest.raises(ValueError, match=r"split 'bad': fractions \(0\.9, 0\.2\) must be two shares"):
        Split("bad", (0.9, 0.2), 0)
