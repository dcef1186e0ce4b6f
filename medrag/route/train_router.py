"""Train the scheduler's intent model on labelled real queries; report held-out numbers and ablations.

The shipped model is the one trained on the training split, so the card's test numbers describe it.
The held-out queries are written next to it, so ``medrag eval route`` can re-score them.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Any

from evaluation.routing import intent_metrics, save_confusion_matrix
from medrag.config import Config
from medrag.encode.pairs import split
from medrag.encode.text import TextEncoder
from medrag.route.classifier import IntentClassifier
from medrag.route.labelled import PRESENTATION, build_labelled_queries, write_queries

FEATURE_SETS = {"full": {}, "text only (no modality flags)": {"use_flags": False},
                "modality flags only": {"use_text": False}}


def train_router(config: Config, data_dir: Path, out: Path, *, seed: int = 0, test_share: float = 0.3,
                 text_encoder: TextEncoder | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    queries = build_labelled_queries(data_dir, seed=seed)
    train, _, test = split(queries, (1.0 - test_share, 0.0), seed)
    encoder = text_encoder or TextEncoder(config.text_model)
    train_embeddings = encoder.encode([item.query.text for item in train], progress=True)
    test_embeddings = encoder.encode([item.query.text for item in test], progress=True)
    card = {"text_model": "/".join(encoder.model_path.parts[-2:]), "seed": seed,
            "presentation_assumptions": PRESENTATION,
            "train_queries": dict(collections.Counter(f"{item.intent}/{item.origin}" for item in train)),
            "test_queries": dict(collections.Counter(f"{item.intent}/{item.origin}" for item in test))}
    ablation = {}
    for name, switches in FEATURE_SETS.items():
        model = IntentClassifier.train([item.query for item in train], [item.intent for item in train],
                                       train_embeddings, card, seed=seed, **switches)
        metrics = intent_metrics([item.intent for item in test],
                                 model.probabilities([item.query for item in test], test_embeddings), model.intents,
                                 [item.origin for item in test])
        ablation[name] = metrics
        if name == "full":
            shipped = model
    out.mkdir(parents=True, exist_ok=True)
    shipped.card.update({"test_metrics": ablation["full"],
                         "ablation": {name: {key: row[key] for key in ("accuracy", "macro_f1", "log_loss")}
                                      for name, row in ablation.items()},
                         "seconds": round(time.perf_counter() - started, 1)})
    shipped.save(out)
    write_queries(test, out / "test_queries.jsonl")
    save_confusion_matrix(ablation["full"], out / "confusion_matrix.png", "intent on held-out queries")
    return shipped.card

