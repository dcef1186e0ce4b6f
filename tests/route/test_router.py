"""The scheduler on real labelled queries: the packaged model, its rules, the table and the file format."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from evaluation.routing import evaluate_router
from medrag.datasets.splits import DEFAULT_SPLIT, card_split
from medrag.route.classifier import DEFAULT_CLASSIFIER, IntentClassifier, RouterModelError
from medrag.route.features import Query, lexical_cues
from medrag.route.router import Hints, Router
from medrag.route.table import RoutingTable, RoutingTableError
from medrag.store import ARTICLES, CASES, REPORTS
from training.labelled_queries import LabelledQuery, read_queries, write_queries

HELD_OUT = DEFAULT_CLASSIFIER / "test_queries.jsonl"


@pytest.fixture(scope="module")
def router(config, text_encoder) -> Router:
    return Router.load(config, text_encoder.encode)


def _collections(route) -> list[str]:
    return [search.collection for search in route.searches]


def test_the_packaged_router_routes_held_out_real_queries(config, text_encoder, tmp_path):
    report = evaluate_router(config, HELD_OUT, tmp_path, text_encoder=text_encoder)
    assert report["queries"] > 500
    assert report["accuracy"] >= 0.9, report
    assert min(report["accuracy_by_origin"].values()) >= 0.8, report["accuracy_by_origin"]
    assert report["primary_source_recall"] >= report["accuracy"], "a misroute may still search the right source"
    assert sum(map(sum, report["confusion_matrix"])) == report["queries"]
    assert (tmp_path / "routing_confusion.png").stat().st_size > 10_000
    assert json.loads((tmp_path / "routing.json").read_text())["accuracy"] == report["accuracy"]


def test_literature_question_goes_to_pubmed_and_says_why(router):
    route = router.route(Query(question="Does preoperative statin therapy reduce mortality after cardiac surgery?"))
    assert route.intent == "literature" and route.confidence > 0.8
    assert _collections(route)[0] == ARTICLES
    assert not route.image_search
    assert "literature" in route.reason and "PubMed articles" in route.reason
    assert abs(sum(route.probabilities.values()) - 1.0) < 1e-6


def test_image_with_symptoms_goes_to_reports_with_pubmed_as_background(router):
    route = router.route(Query(note="58 year old woman, fever and productive cough for 4 days, hypoxic on room air",
                               has_image=True))
    assert route.intent == "clinical"
    assert _collections(route)[:2] == [REPORTS, CASES]
    assert ARTICLES in _collections(route), "PubMed stays as background"
    assert route.image_search and route.models["image_encoder"] == "joint"
    assert any("image" in rule for rule in route.rules)


def test_an_image_alone_is_an_imaging_query_searched_by_its_joint_vector(router):
    route = router.route(Query(has_image=True))
    assert route.intent == "imaging" and route.image_search
    assert {REPORTS, CASES} <= set(_collections(route))


def test_hints_override_the_model(router):
    question = Query(question="Does preoperative statin therapy reduce mortality after cardiac surgery?")
    route = router.route(question, Hints(sources=(REPORTS,)))
    assert _collections(route) == [REPORTS]
    forced = router.route(question, Hints(intent="clinical"))
    assert forced.intent == "clinical" and forced.probabilities["clinical"] == 1.0
    with pytest.raises(ValueError, match="unknown source hint"):
        router.route(question, Hints(sources=("Wikipedia",)))


def test_low_confidence_searches_more_sources_and_deeper(router):
    query = Query(question="pneumonia")
    sure = Router(dataclasses.replace(router.table, confidence_threshold=0.0), router.classifier, router.embed)
    unsure = Router(dataclasses.replace(router.table, confidence_threshold=1.01), router.classifier, router.embed)
    confident, doubtful = sure.route(query), unsure.route(query)
    assert set(_collections(confident)) <= set(_collections(doubtful))
    depth = {search.collection: search.limit for search in confident.searches}
    assert all(search.limit > depth.get(search.collection, 0) for search in doubtful.searches)
    assert any("low confidence" in rule for rule in doubtful.rules)


def test_empty_query_is_refused(router):
    with pytest.raises(ValueError, match="empty query"):
        router.route(Query())


def test_batch_routing_equals_one_by_one(router):
    queries = [item.query for item in read_queries(HELD_OUT)[:20]]
    batch = router.route_batch(queries)
    assert [route.intent for route in batch] == [router.route(query).intent for query in queries]


def test_model_and_encoder_must_match(router):
    with pytest.raises(RouterModelError, match="retrain"):
        router.classifier.probabilities([Query(question="x")], np.zeros((1, 768), dtype=np.float32))


def test_a_trained_model_saves_and_loads_to_the_same_probabilities(text_encoder, tmp_path):
    labelled = read_queries(HELD_OUT)[::5]
    embeddings = text_encoder.encode([item.query.text for item in labelled])
    model = IntentClassifier.train([item.query for item in labelled], [item.intent for item in labelled],
                                   embeddings, {"text_model": "test"})
    model.save(tmp_path)
    loaded = IntentClassifier.load(tmp_path)
    queries = [item.query for item in labelled[:10]]
    np.testing.assert_allclose(loaded.probabilities(queries, embeddings[:10]),
                               model.probabilities(queries, embeddings[:10]))
    with pytest.raises(RouterModelError, match="medrag train router"):
        IntentClassifier.load(tmp_path / "missing")


def test_routing_table_errors_name_the_key(tmp_path):
    table = {"intents": {"literature": {"sources": {"Wikipedia": {"weight": 1.0}}}}}
    with pytest.raises(RoutingTableError, match=r"intents\.literature\.sources: unknown collection 'Wikipedia'"):
        RoutingTable.from_dict(table)
    table = {"intents": {"literature": {"sources": {ARTICLES: {"alpha": 2}}}}}
    with pytest.raises(RoutingTableError, match="alpha must be between 0"):
        RoutingTable.from_dict(table)
    with pytest.raises(RoutingTableError, match="unknown keys"):
        RoutingTable.from_dict({"intents": {"x": {"sources": {ARTICLES: {}}}}, "confidence": 1})
    with pytest.raises(RoutingTableError, match="does not exist"):
        RoutingTable.load(tmp_path / "none.yaml")


def test_labelled_query_files_round_trip_and_bad_lines_are_named(tmp_path):
    queries = read_queries(HELD_OUT)[:30]
    write_queries(queries, tmp_path / "q.jsonl")
    assert read_queries(tmp_path / "q.jsonl") == queries
    (tmp_path / "bad.jsonl").write_text('{"question": "x", "intent": "literature"}\n{"question": "y"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not a labelled query"):
        read_queries(tmp_path / "bad.jsonl")
    (tmp_path / "intent.jsonl").write_text('{"question": "x", "intent": "gossip"}\n')
    with pytest.raises(ValueError, match="intent 'gossip' is not one of"):
        read_queries(tmp_path / "intent.jsonl")


def test_split_never_puts_a_group_on_both_sides():
    queries = [LabelledQuery(Query(question=f"q{i}"), "literature", f"pubmedqa:{i % 17}", "test") for i in range(170)]
    train, validation, test = DEFAULT_SPLIT.divide(queries)
    assert train and test
    assert not {item.group for item in train + validation} & {item.group for item in test}


def test_the_held_out_queries_are_the_test_part_of_the_cards_split(router):
    split = card_split(router.classifier.card, "intent-minilm card.json")
    held_out = read_queries(HELD_OUT)
    assert {split.part(item.group) for item in held_out} == {"test"}
    assert len(held_out) == router.classifier.card["split"]["parts"]["test"]["items"]


def test_lexical_cues_see_questions_and_symptoms():
    cues = lexical_cues(Query(question="Is there a pleural effusion?", has_image=True))
    assert cues["ends_with_question_mark"] == 1 and cues["question_opener"] == 1 and cues["has_image"] == 1
    assert cues["imaging_words"] > 0 and cues["symptoms_words"] == 0
    assert lexical_cues(Query(note="fever and cough"))["symptoms_words"] > 0
