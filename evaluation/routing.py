"""Routing metrics: intent accuracy, macro-F1, calibration, the confusion matrix (PNG), and whether
a misrouted query still searches the source its true intent needs most.

Works on any labelled-query file in the JSON Lines format of ``medrag.route.labelled``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
)

from evaluation.outputs import save_figure
from medrag.config import Config
from medrag.encode.text import TextEncoder
from medrag.route.labelled import LabelledQuery, read_queries
from medrag.route.router import Route, Router


def intent_metrics(true: Sequence[str], probabilities: np.ndarray, intents: Sequence[str],
                   origins: Sequence[str]) -> dict[str, Any]:
    """Accuracy (overall and per data origin), balanced accuracy, macro-F1, log loss, confusion matrix."""
    predicted = [intents[index] for index in probabilities.argmax(axis=1)]
    order = np.argsort(list(intents))  # log_loss reads the columns in sorted label order
    matrix = confusion_matrix(true, predicted, labels=list(intents))
    by_origin: dict[str, list[bool]] = {}
    for origin, truth, guess in zip(origins, true, predicted, strict=True):
        by_origin.setdefault(origin, []).append(truth == guess)
    return {
        "queries": len(true),
        "accuracy": float(accuracy_score(true, predicted)),
        "balanced_accuracy": float(balanced_accuracy_score(true, predicted)),
        "macro_f1": float(f1_score(true, predicted, labels=list(intents), average="macro", zero_division=0)),
        "log_loss": float(log_loss(true, probabilities[:, order] / probabilities.sum(1, keepdims=True),
                                   labels=sorted(intents))),
        "intents": list(intents),
        "confusion_matrix": matrix.tolist(),
        "accuracy_by_origin": {origin: float(np.mean(hits)) for origin, hits in sorted(by_origin.items())},
    }


def save_confusion_matrix(metrics: dict[str, Any], path: Path, title: str) -> Path:
    display = ConfusionMatrixDisplay(np.array(metrics["confusion_matrix"]), display_labels=metrics["intents"])
    display.plot(cmap="Blues", colorbar=False)
    display.ax_.set_title(f"{title}\naccuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}")
    return save_figure(display.figure_, path)


def primary_source_recall(queries: Sequence[LabelledQuery], routes: Sequence[Route], router: Router) -> float:
    """Share of queries whose route searches the heaviest source of their true intent's table row."""
    hits = 0
    for item, route in zip(queries, routes, strict=True):
        primary = max(router.table.intents[item.intent].sources, key=lambda search: search.weight).collection
        hits += primary in {search.collection for search in route.searches}
    return hits / len(queries)


def evaluate_router(config: Config, queries_path: Path, out_dir: Path | None = None,
                    text_encoder: TextEncoder | None = None) -> dict[str, Any]:
    """Route every labelled query in ``queries_path`` with the configured router and score the routes."""
    queries = read_queries(queries_path)
    encoder = text_encoder or TextEncoder(config.text_model)
    router = Router.load(config, encoder.encode)
    routes = router.route_batch([item.query for item in queries])
    intents = router.classifier.intents
    probabilities = np.array([[route.probabilities[name] for name in intents] for route in routes])
    report = {"file": str(queries_path), **intent_metrics([item.intent for item in queries], probabilities, intents,
                                                               [item.origin for item in queries]),
              "primary_source_recall": primary_source_recall(queries, routes, router),
              "low_confidence_share": float(np.mean([route.confidence < router.table.confidence_threshold
                                                     for route in routes]))}
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "routing.json").write_text(json.dumps(report, indent=2) + "\n")
        save_confusion_matrix(report, out_dir / "routing_confusion.png", f"routing on {queries_path.name}")
    return report
