"""``medrag train decision``: the yes/no/maybe model, trained on PubMedQA questions answered by the real pipeline.

Each question is searched through the real Assistant (router, Weaviate, fusion), its evidence sentences are
gathered exactly as an answer would gather them, and the features of ``decision_features`` are kept with
the expert label. The questions are divided by the named group split every medrag model shares (so the fusion
module that reranked a test question never trained on it either): C is chosen by cross-validation on the train
and validation parts, the shipped model is fitted on them, and the test part gives held-out figures against
the majority class of the training labels.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from tqdm import tqdm

from medrag.datasets.pubmedqa import read_pubmedqa
from medrag.datasets.splits import DEFAULT_SPLIT, Split
from medrag.generate.decision import LABELS, DecisionModel, decision_features
from medrag.metrics import bootstrap_interval, label_metrics
from medrag.reporting import save_confusion_matrix

if TYPE_CHECKING:
    from medrag.assistant import Assistant

C_GRID = (0.001, 0.01, 0.1)
BATCH = 32


def question_features(assistant: Assistant, questions: Sequence[str], *, tenant: str | None,
                      progress: bool = True) -> np.ndarray:
    """Decision features of each question from the evidence the pipeline finds for it."""
    rows = []
    for start in tqdm(range(0, len(questions), BATCH), desc="questions", unit="batch", disable=not progress):
        chunk = questions[start:start + BATCH]
        results = assistant.search_batch([{"question": question} for question in chunk], tenant=tenant)
        vectors = assistant.retriever.text_vectors(chunk)
        for result, vector in zip(results, vectors, strict=True):
            evidence, _ = assistant.writer.evidence(result)
            rows.append(decision_features(vector, evidence))
    return np.stack(rows)


def _label_columns(pipeline: Any) -> list[int]:
    """The probability columns in ``LABELS`` order (scikit-learn sorts its classes)."""
    return [list(pipeline.classes_).index(label) for label in LABELS]


def held_out_figures(labels: Sequence[str], probabilities: np.ndarray, majority: str) -> dict[str, Any]:
    """Test-part metrics of the model beside always answering ``majority`` (the training labels' majority), with
    95% bootstrap intervals of the accuracy and of the paired gain over the majority class."""
    metrics = label_metrics(list(labels), probabilities, LABELS, ["pubmedqa"] * len(labels))
    correct = np.array([LABELS[index] == label for index, label in zip(probabilities.argmax(1), labels, strict=True)])
    majority_correct = np.array([label == majority for label in labels])
    return {"metrics": metrics, "accuracy_ci95": bootstrap_interval(correct),
            "majority_label": majority, "majority_accuracy": float(majority_correct.mean()),
            "gain_over_majority_ci95": bootstrap_interval(correct.astype(float) - majority_correct)}


def train_decision(assistant: Assistant, questions_path: Path, out: Path, *, tenant: str | None,
                   split: Split = DEFAULT_SPLIT, folds: int = 5, seed: int = 0,
                   progress: bool = True) -> dict[str, Any]:
    """Cross-validate over ``C_GRID`` on the split's train and validation parts, keep the best C, fit on them,
    score the test part; save model, card and confusion matrices to ``out``."""
    started = time.time()
    records = read_pubmedqa(questions_path, require_decision=True)
    train, validation, test = split.divide(records)
    fitted_on = train + validation
    if len(fitted_on) < folds or not test:
        raise ValueError(f"{questions_path}: split {split.name!r} gives {len(fitted_on)} questions to fit on and "
                         f"{len(test)} to test; give a file with at least {folds} questions to fit on and one to test")
    labels = [record.final_decision for record in fitted_on]
    test_labels = [record.final_decision for record in test]
    features = question_features(assistant, [record.question for record in fitted_on], tenant=tenant,
                                 progress=progress)
    test_features = question_features(assistant, [record.question for record in test], tenant=tenant,
                                      progress=progress)
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed)
    cross_validated = {}
    for c in C_GRID:
        pipeline = DecisionModel.fit(features, labels, {}, c=c).pipeline
        probabilities = cross_val_predict(pipeline, features, labels, cv=splits, method="predict_proba")
        cross_validated[c] = label_metrics(labels, probabilities[:, _label_columns(pipeline)], LABELS,
                                           ["pubmedqa"] * len(labels))
    best = max(C_GRID, key=lambda c: cross_validated[c]["accuracy"])
    majority = max(LABELS, key=labels.count)
    card = {
        "name": "decision-pubmedqa", "trained_on": f"{questions_path.name} ({len(fitted_on)} of {len(records)} "
                                                  f"questions: split {split.name} train + validation)",
        "trained_on_sha256": hashlib.sha256(questions_path.read_bytes()).hexdigest(),
        "split": split.describe(records),
        "text_model": "/".join(assistant.text_encoder.model_path.parts[-2:]), "labels": list(LABELS),
        "label_counts": {label: labels.count(label) for label in LABELS},
        "majority_baseline_accuracy": labels.count(majority) / len(labels),
        "cross_validation": {"folds": folds, "seed": seed, "selected_C": best,
                             "by_C": {str(c): {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
                                      for c, m in cross_validated.items()},
                             "metrics": cross_validated[best]},
        "note": "selected_C was chosen on the same folds, so its cross-validated figures are slightly optimistic; "
                "the test figures are not",
    }
    model = DecisionModel.fit(features, labels, card, c=best)
    test_probabilities = model.pipeline.predict_proba(test_features)[:, _label_columns(model.pipeline)]
    model.card["test"] = held_out_figures(test_labels, test_probabilities, majority)
    model.card["seconds"] = round(time.time() - started, 1)
    model.save(out)
    save_confusion_matrix(cross_validated[best], out / "confusion_matrix.png",
                          f"yes/no/maybe, {folds}-fold cross-validated on train + validation (C={best})")
    save_confusion_matrix(model.card["test"]["metrics"], out / "test_confusion_matrix.png",
                          f"yes/no/maybe, held-out test part of {split.name} (C={best})")
    return model.card
