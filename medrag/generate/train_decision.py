"""``medrag train decision``: the yes/no/maybe model, trained on PubMedQA questions answered by the real pipeline.

Each question is searched through the real Assistant (router, Weaviate, fusion), its evidence sentences are
gathered exactly as an answer would gather them, and the features of ``decision_features`` are kept with
the expert label. Five-fold cross-validated predictions (every question predicted by a model that never
saw it) give the figures in the card; the shipped model is then fitted on every question.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from tqdm import tqdm

from evaluation.routing import intent_metrics, save_confusion_matrix
from medrag.generate.decision import LABELS, DecisionModel, decision_features

if TYPE_CHECKING:
    from medrag.assistant import Assistant

C_GRID = (0.001, 0.01, 0.1)
BATCH = 32


def read_pubmedqa(path: Path) -> list[tuple[str, str, str]]:
    """(PMID, question, final_decision) of a PubMedQA-format JSON file."""
    entries = json.loads(path.read_text())
    rows = []
    for pmid, entry in entries.items():
        label = entry.get("final_decision")
        if label not in LABELS or not entry.get("QUESTION"):
            raise ValueError(f"{path}: record {pmid} needs QUESTION and final_decision (yes/no/maybe); "
                             f"got final_decision={label!r}")
        rows.append((pmid, entry["QUESTION"], label))
    return rows


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


def train_decision(assistant: Assistant, questions_path: Path, out: Path, *, tenant: str | None,
                   folds: int = 5, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    """Cross-validate over ``C_GRID``, keep the best C, fit on all questions, save model, card and confusion
    matrix to ``out``."""
    started = time.time()
    rows = read_pubmedqa(questions_path)
    labels = [label for _, _, label in rows]
    features = question_features(assistant, [question for _, question, _ in rows], tenant=tenant, progress=progress)
    splits = StratifiedKFold(folds, shuffle=True, random_state=seed)
    cross_validated = {}
    for c in C_GRID:
        pipeline = DecisionModel.fit(features, labels, {}, c=c).pipeline
        probabilities = cross_val_predict(pipeline, features, labels, cv=splits, method="predict_proba")
        order = [list(pipeline.classes_).index(label) for label in LABELS]
        cross_validated[c] = intent_metrics(labels, probabilities[:, order], LABELS, ["pubmedqa"] * len(labels))
    best = max(C_GRID, key=lambda c: cross_validated[c]["accuracy"])
    majority = max(LABELS, key=labels.count)
    card = {
        "name": "decision-pubmedqa", "trained_on": f"{questions_path.name} ({len(rows)} questions)",
        "trained_on_sha256": hashlib.sha256(questions_path.read_bytes()).hexdigest(),
        "text_model": "/".join(assistant.text_encoder.model_path.parts[-2:]), "labels": list(LABELS),
        "label_counts": {label: labels.count(label) for label in LABELS},
        "majority_baseline_accuracy": labels.count(majority) / len(labels),
        "cross_validation": {"folds": folds, "seed": seed, "selected_C": best,
                             "by_C": {str(c): {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}
                                      for c, m in cross_validated.items()},
                             "metrics": cross_validated[best]},
        "note": "selected_C was chosen on the same folds, so its figures are slightly optimistic",
    }
    model = DecisionModel.fit(features, labels, card, c=best)
    model.card["seconds"] = round(time.time() - started, 1)
    model.save(out)
    save_confusion_matrix(cross_validated[best], out / "confusion_matrix.png",
                          f"yes/no/maybe, {folds}-fold cross-validated (C={best})")
    return model.card
