"""Train the scheduler's intent model on labelled real queries; report held-out numbers and ablations.

The split is the named group split all medrag models share: the model is fitted on its train and validation
parts (it selects nothing on validation; its calibration cross-validates inside the training data) and scored
on its test part, so the card's test numbers describe the shipped model. The held-out queries are written
next to it, so ``medrag eval route`` can re-score them.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import Any

from medrag.config import Config
from medrag.datasets.splits import DEFAULT_SPLIT, Split
from medrag.encode.text import TextEncoder
from medrag.metrics import label_metrics
from medrag.reporting import save_confusion_matrix
from medrag.route.classifier import IntentClassifier
from training.labelled_queries import PRESENTATION, build_labelled_queries, write_queries

FEATURE_SETS = {"full": {}, "text only (no modality flags)": {"use_flags": False},
                "modality flags only": {"use_text": False}}


def train_router(config: Config, data_dir: Path, out: Path, *, seed: int = 0, split: Split = DEFAULT_SPLIT,
                 text_encoder: TextEncoder | None = None) -> dict[str, Any]:
    started = time.perf_counter()
    queries = build_labelled_queries(data_dir, seed=seed)
    train, validation, test = split.divide(queries)
    train = train + validation  # nothing is selected on validation: it is training data here
    encoder = text_encoder or TextEncoder(config.text_model)
    train_embeddings = encoder.encode([item.query.text for item in train], progress=True)
    test_embeddings = encoder.encode([item.query.text for item in test], progress=True)
    card = {"text_model": "/".join(encoder.model_path.parts[-2:]), "seed": seed, "split": split.describe(queries),
            "presentation_assumptions": PRESENTATION,
            "train_queries": dict(collections.Counter(f"{item.intent}/{item.origin}" for item in train)),
            "test_queries": dict(collections.Counter(f"{item.intent}/{item.origin}" for item in test))}
    ablation = {}
    for name, switches in FEATURE_SETS.items():
        model = IntentClassifier.train([item.query for item in train], [item.intent for item in train],
                                       train_embeddings, card, seed=seed, **switches)
        metrics = label_metrics([item.intent for item in test],
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

