"""The yes/no/maybe model trained through the real pipeline on real PubMedQA questions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medrag.datasets.pubmedqa import read_pubmedqa
from medrag.datasets.splits import DEFAULT_SPLIT
from medrag.generate.decision import LABELS, DecisionModel, decision_features
from training.decision import train_decision


def test_training_fits_on_the_splits_train_part_and_scores_its_test_part(assistant, knowledge, pubmedqa, tmp_path):
    questions = tmp_path / "qa.json"
    questions.write_text(json.dumps(dict(list(pubmedqa.items())[:40])))  # the abstracts in the knowledge tenant
    out = tmp_path / "decision"
    card = train_decision(assistant, questions, out, tenant=knowledge, folds=2, progress=False)
    train, validation, test = DEFAULT_SPLIT.divide(read_pubmedqa(questions))
    labels = [record.final_decision for record in train + validation]
    majority = max(LABELS, key=labels.count)
    assert card["split"] == DEFAULT_SPLIT.describe(train + validation + test)
    assert card["majority_baseline_accuracy"] == labels.count(majority) / len(labels)
    metrics = card["cross_validation"]["metrics"]
    assert 0 <= metrics["accuracy"] <= 1 and np.sum(metrics["confusion_matrix"]) == len(labels)
    held_out = card["test"]
    test_labels = [record.final_decision for record in test]
    assert held_out["metrics"]["queries"] == len(test) and np.sum(held_out["metrics"]["confusion_matrix"]) == len(test)
    assert held_out["majority_label"] == majority
    assert held_out["majority_accuracy"] == test_labels.count(majority) / len(test)
    low, high = held_out["accuracy_ci95"]
    assert low <= held_out["metrics"]["accuracy"] <= high
    assert (out / "confusion_matrix.png").stat().st_size > 0 and (out / "test_confusion_matrix.png").is_file()
    model = DecisionModel.load(out)
    result = assistant.search(question=pubmedqa[next(iter(pubmedqa))]["QUESTION"], tenant=knowledge)
    evidence, _ = assistant.writer.evidence(result)
    decision = model(decision_features(assistant.retriever.text_vector(result.query.question), evidence))
    assert decision.label in LABELS and abs(sum(decision.probabilities.values()) - 1) < 1e-6
    assert f"{metrics['accuracy']:.3f}" in decision.reliability


@pytest.mark.unit
def test_training_needs_labelled_questions_and_names_the_record(tmp_path):
    unlabelled = tmp_path / "qa.json"
    unlabelled.write_text(json.dumps({"123": {"QUESTION": "Is it?", "CONTEXTS": ["Yes."]}}))
    with pytest.raises(ValueError, match=r"qa\.json: PMID 123: field 'final_decision' is missing"):
        train_decision(None, unlabelled, tmp_path / "out", tenant=None, progress=False)  # refused before any search
