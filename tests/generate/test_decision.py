"""The yes/no/maybe model trained through the real pipeline on real PubMedQA questions."""

from __future__ import annotations

import json

import numpy as np

from medrag.generate.decision import LABELS, DecisionModel, decision_features
from medrag.generate.train_decision import read_pubmedqa, train_decision


def test_training_writes_a_cross_validated_card_and_a_model_that_loads(assistant, knowledge, pubmedqa, tmp_path):
    questions = tmp_path / "qa.json"
    questions.write_text(json.dumps(dict(list(pubmedqa.items())[:40])))  # the abstracts in the knowledge tenant
    out = tmp_path / "decision"
    card = train_decision(assistant, questions, out, tenant=knowledge, folds=2, progress=False)
    labels = [label for _, _, label in read_pubmedqa(questions)]
    majority = max(LABELS, key=labels.count)
    assert card["majority_baseline_accuracy"] == labels.count(majority) / len(labels)
    metrics = card["cross_validation"]["metrics"]
    assert 0 <= metrics["accuracy"] <= 1 and np.sum(metrics["confusion_matrix"]) == len(labels)
    assert (out / "confusion_matrix.png").stat().st_size > 0
    model = DecisionModel.load(out)
    result = assistant.search(question=pubmedqa[next(iter(pubmedqa))]["QUESTION"], tenant=knowledge)
    evidence, _ = assistant.writer.evidence(result)
    decision = model(decision_features(assistant.retriever.text_vector(result.query.question), evidence))
    assert decision.label in LABELS and abs(sum(decision.probabilities.values()) - 1) < 1e-6
    assert f"{metrics['accuracy']:.3f}" in decision.reliability


def test_a_bad_record_is_named(tmp_path):
    broken = tmp_path / "qa.json"
    broken.write_text(json.dumps({"123": {"QUESTION": "Is it?", "final_decision": "perhaps"}}))
    try:
        read_pubmedqa(broken)
    except ValueError as error:
        assert "record 123" in str(error) and "final_decision" in str(error)
    else:
        raise AssertionError("a record with an unknown label was accepted")
