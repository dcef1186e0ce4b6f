"""The yes/no/maybe decider: the reader's scores on real PubMedQA questions searched through the real pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medrag.datasets.pubmedqa import read_pubmedqa
from medrag.datasets.splits import DEFAULT_SPLIT
from medrag.generate.decision import LABELS, DecisionModel, decision_evidence, reader_features, reader_scores
from training.decision import ScoreCache, abstention, train_decision


def test_training_fits_on_the_splits_train_part_and_scores_its_test_part(assistant, knowledge, pubmedqa, tmp_path):
    questions = tmp_path / "qa.json"
    questions.write_text(json.dumps(dict(list(pubmedqa.items())[:24])))  # the abstracts in the knowledge tenant
    out = tmp_path / "decision"
    card = train_decision(assistant, questions, out, tenant=knowledge, folds=2, progress=False)
    train, validation, test = DEFAULT_SPLIT.divide(read_pubmedqa(questions))
    labels = [record.final_decision for record in train + validation]
    majority = max(LABELS, key=labels.count)
    assert card["split"] == DEFAULT_SPLIT.describe(train + validation + test)
    assert card["reader"] == assistant.writer.language_model.name
    assert card["majority_baseline_accuracy"] == labels.count(majority) / len(labels)
    cross = card["cross_validation"]
    assert 0 <= cross["metrics"]["accuracy"] <= 1 and np.sum(cross["metrics"]["confusion_matrix"]) == len(labels)
    assert set(cross["candidates"]) >= {"C=1.0", "C=1.0 + conclusions"}
    assert cross["selected"] in cross["candidates"] and 0 <= cross["ece"] <= 1
    held_out = card["test"]
    test_labels = [record.final_decision for record in test]
    assert held_out["metrics"]["queries"] == len(test) and np.sum(held_out["metrics"]["confusion_matrix"]) == len(test)
    assert held_out["majority_label"] == majority
    assert held_out["majority_accuracy"] == test_labels.count(majority) / len(test)
    low, high = held_out["accuracy_ci95"]
    assert low <= held_out["metrics"]["accuracy"] <= high
    for figure in ("confusion_matrix.png", "test_confusion_matrix.png", "reliability.png", "abstention.png"):
        assert (out / figure).stat().st_size > 0
    written = (out / "MODEL_CARD.md").read_text()
    assert f"**{cross['metrics']['accuracy']:.3f}**" in written
    assert f"**{held_out['metrics']['accuracy']:.3f}**" in written
    cache = ScoreCache(assistant.config.cache_dir, assistant.writer.language_model)
    assert len(cache.scores) >= len(train + validation + test), "every prompt scored once, kept for the next run"

    model = DecisionModel.load(out)
    assert model.fits(assistant.writer.language_model.name) and not model.fits("another reader")
    result = assistant.search(question=pubmedqa[next(iter(pubmedqa))]["QUESTION"], tenant=knowledge)
    decision = model(reader_scores(assistant.writer.language_model, result.query.question, decision_evidence(result)))
    assert decision.label in LABELS and abs(sum(decision.probabilities.values()) - 1) < 1e-6
    assert f"{cross['metrics']['accuracy']:.3f}" in decision.reliability


@pytest.mark.unit
def test_reader_features_keep_the_raw_and_the_relative_scores():
    features = reader_features(np.array([[-1.0, -2.0, -3.0], [-5.0, -6.0, -7.0]]))
    assert features.shape == (2, 6)
    np.testing.assert_allclose(features[0, 3:], features[1, 3:], err_msg="one preference at another overall level")
    np.testing.assert_allclose(np.exp(features[:, 3:]).sum(1), 1.0)


@pytest.mark.unit
def test_the_abstention_threshold_is_the_lowest_that_reaches_the_target():
    # Confident predictions are right, unsure ones wrong: the threshold falls between them.
    probabilities = np.array([[0.9, 0.05, 0.05]] * 6 + [[0.4, 0.35, 0.25]] * 4)
    labels = ["yes"] * 6 + ["no"] * 4
    chosen = abstention(probabilities, labels, target=0.8)
    assert 0.4 < chosen["threshold"] <= 0.9 and chosen["accuracy"] == 1.0 and chosen["coverage"] == 0.6
    assert abstention(probabilities[6:], labels[6:], target=0.8)["threshold"] is None, "never right: never decided"


@pytest.mark.unit
def test_training_needs_labelled_questions_and_names_the_record(tmp_path):
    unlabelled = tmp_path / "qa.json"
    unlabelled.write_text(json.dumps({"123": {"QUESTION": "Is it?", "CONTEXTS": ["Yes."]}}))
    with pytest.raises(ValueError, match=r"qa\.json: PMID 123: field 'final_decision' is missing"):
        train_decision(None, unlabelled, tmp_path / "out", tenant=None, progress=False)  # refused before any search
