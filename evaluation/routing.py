"""Routing metrics: intent accuracy, macro-F1, calibration, the confusion matrix (PNG), and whether
a misrouted query still searches the source its true intent needs most.

Works on any labelled-query file in the JSON Lines format of ``training.labelled_queries``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medrag.config import Config
from medrag.encode.text import TextEncoder
from medrag.metrics import bootstrap_interval, label_metrics
from medrag.reporting import save_confusion_matrix
from medrag.route.router import Route, Router
from training.labelled_queries import LabelledQuery, read_queries


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
    truth = [item.intent for item in queries]
    correct = [float(intents[index] == label) for index, label in zip(probabilities.argmax(axis=1), truth, strict=True)]
    majority = max(intents, key=truth.count)
    report = {"file": str(queries_path), **label_metrics(truth, probabilities, intents,
                                                               [item.origin for item in queries]),
              "accuracy_ci95": bootstrap_interval(correct),
              "majority_baseline": {"intent": majority, "accuracy": truth.count(majority) / len(truth)},
              "primary_source_recall": primary_source_recall(queries, routes, router),
              "low_confidence_share": float(np.mean([route.confidence < router.table.confidence_threshold
                                                     for route in routes]))}
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "routing.json").write_text(json.dumps(report, indent=2) + "\n")
        save_confusion_matrix(report, out_dir / "routing_confusion.png", f"routing on {queries_path.name}")
    return report
