"""One named split for every model: the shipped cards record it, and the data reproduces their member hashes.

These tests read ../shared/data (no Weaviate): they fail when a trainer splits on its own again, when a group
key changes, or when a committed model was trained on another split than its card says.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from medrag.datasets.covid import covid_cases
from medrag.datasets.pubmedqa import read_pubmedqa
from medrag.datasets.splits import DEFAULT_SPLIT, card_split
from medrag.encode.joint import DEFAULT_CHECKPOINT as JOINT
from medrag.encode.joint import PARTIAL_CONFIG
from medrag.fuse.checkpoint import CHECKPOINT_CONFIG
from medrag.fuse.checkpoint import DEFAULT_CHECKPOINT as FUSION
from medrag.generate.decision import CARD_FILE as DECISION_CARD
from medrag.generate.decision import DEFAULT_MODEL as DECISION
from medrag.read.reader import CARD_FILE as READ_CARD
from medrag.read.reader import DEFAULT_MODEL as READ
from medrag.route.classifier import CARD_FILE as ROUTER_CARD
from medrag.route.classifier import DEFAULT_CLASSIFIER as ROUTER
from training import fusion, joint
from training.fusion_data import covid_queries
from training.labelled_queries import build_labelled_queries
from training.read import read_cases

CARDS = {"joint": JOINT / PARTIAL_CONFIG, "fusion": FUSION / CHECKPOINT_CONFIG, "router": ROUTER / ROUTER_CARD,
         "decision": DECISION / DECISION_CARD, "read": READ / READ_CARD}


@pytest.fixture(scope="module")
def files(data_dir: Path) -> dict[str, Path]:
    return {"pubmedqa": data_dir / "pubmed" / "pubmedqa_pqal_dev.json",
            "covid": data_dir / "cxr" / "covid" / "metadata.csv"}


def _card(name: str) -> dict:
    return json.loads(CARDS[name].read_text())


def test_every_trainer_defaults_to_the_one_named_split():
    assert joint.TrainOptions().split == fusion.TrainOptions().split == DEFAULT_SPLIT


def test_joint_model_and_fusion_module_hold_out_the_same_covid_patients(data_dir, files):
    joint_covid = [pair for pair in joint.image_text_pairs(data_dir) if pair.source == "covid"]
    joint_parts = [{pair.group for pair in part} for part in joint.TrainOptions().split.divide(joint_covid)]
    fusion_parts = [{case.group for case in part}
                    for part in fusion.TrainOptions().split.divide(covid_queries(files["covid"]))]
    shared = set().union(*joint_parts) & set().union(*fusion_parts)
    assert len(shared) > 200, "both read the same patients under the same keys"
    for joint_part, fusion_part in zip(joint_parts, fusion_parts, strict=True):
        assert joint_part & shared == fusion_part & shared
    assert fusion_parts[2] and not fusion_parts[2] & (joint_parts[0] | joint_parts[1]), \
        "a held-out fusion query never shows the joint model a patient it trained on"


@pytest.mark.parametrize("name", sorted(CARDS))
def test_each_shipped_card_names_the_default_split(name):
    assert card_split(_card(name), str(CARDS[name])) == DEFAULT_SPLIT


def test_the_joint_card_hash_is_recomputed_from_the_data(data_dir):
    assert _card("joint")["split"] == DEFAULT_SPLIT.describe(joint.image_text_pairs(data_dir))


def test_the_fusion_card_hash_is_recomputed_from_the_data(files):
    queries = [*read_pubmedqa(files["pubmedqa"]), *covid_queries(files["covid"])]
    assert _card("fusion")["split"] == DEFAULT_SPLIT.describe(queries)


def test_the_router_card_hash_is_recomputed_from_the_data(data_dir):
    card = _card("router")
    assert card["split"] == DEFAULT_SPLIT.describe(build_labelled_queries(data_dir, seed=card["seed"]))


def test_the_decision_card_hash_is_recomputed_from_the_data(files):
    card = _card("decision")
    digest = hashlib.sha256(files["pubmedqa"].read_bytes()).hexdigest()
    assert card["trained_on_sha256"] == {files["pubmedqa"].name: digest}
    assert card["split"] == DEFAULT_SPLIT.describe(read_pubmedqa(files["pubmedqa"]))


def test_the_read_card_hash_is_recomputed_from_the_data_and_its_test_patients_are_unseen(data_dir, files):
    card = _card("read")
    cases = read_cases(files["covid"])
    assert card["trained_on_sha256"] == hashlib.sha256(files["covid"].read_bytes()).hexdigest()
    assert card["split"] == DEFAULT_SPLIT.describe(cases)
    joint_covid = [pair for pair in joint.image_text_pairs(data_dir) if pair.source == "covid"]
    joint_trained = {pair.group for pair in joint_covid if DEFAULT_SPLIT.part(pair.group) != "test"}
    read_test = {case.group for case in cases if DEFAULT_SPLIT.part(case.group) == "test"}
    assert len(read_test) == card["test"]["image"]["groups"]
    assert read_test and not read_test & joint_trained, "no vector behind a held-out read came from a trained patient"


def test_covid_patients_keep_their_side_across_the_router_and_the_cases(data_dir, files):
    notes = [query for query in build_labelled_queries(data_dir) if query.origin == "covid-note"]
    cases = {case.group for case in covid_cases(files["covid"])}
    assert {query.group for query in notes} <= cases, "the router's covid groups are the cases' patient groups"
