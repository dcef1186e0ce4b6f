"""The learned part of the scheduler: intent probabilities from query features.

A standardised logistic regression, calibrated by cross-validated Platt scaling (scikit-learn's
``CalibratedClassifierCV``), so that "0.9 literature" means right about nine times in ten, which is
what the low-confidence rule relies on. Saved with skops (no pickle); loading trusts scikit-learn
and NumPy types only.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from medrag.route.features import Query, feature_matrix
from medrag.sklearn_io import load_model, save_model

DEFAULT_CLASSIFIER = Path(__file__).parent / "weights" / "intent-minilm"
MODEL_FILE, CARD_FILE = "intent.skops", "card.json"


class RouterModelError(ValueError):
    """The intent model is missing, untrusted or does not match the text encoder."""


def intent_model(seed: int = 0) -> Pipeline:
    base = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000, random_state=seed)
    return make_pipeline(StandardScaler(), CalibratedClassifierCV(base, method="sigmoid", cv=5))


class IntentClassifier:
    """Calibrated intent probabilities; bound to the text encoder whose embeddings it was trained on."""

    def __init__(self, model: Pipeline, card: dict[str, Any]) -> None:
        self.model = model
        self.card = card

    @property
    def intents(self) -> tuple[str, ...]:
        return tuple(str(intent) for intent in self.model.classes_)

    @classmethod
    def train(cls, queries: Sequence[Query], intents: Sequence[str], embeddings: np.ndarray,
              card: dict[str, Any], *, seed: int = 0, use_text: bool = True, use_flags: bool = True
              ) -> IntentClassifier:
        features = feature_matrix(list(queries), embeddings, use_text=use_text, use_flags=use_flags)
        model = intent_model(seed).fit(features, list(intents))
        return cls(model, {**card, "embedding_dim": int(embeddings.shape[1]), "use_text": use_text,
                           "use_flags": use_flags})

    def probabilities(self, queries: Sequence[Query], embeddings: np.ndarray) -> np.ndarray:
        """(len(queries), len(intents)) rows summing to one, columns in ``intents`` order."""
        if embeddings.shape[1] != self.card["embedding_dim"]:
            raise RouterModelError(
                f"the intent model was trained on {self.card['embedding_dim']}-d embeddings of "
                f"{self.card.get('text_model')}, the text encoder gives {embeddings.shape[1]}-d; "
                "retrain it with `medrag train router` for this text model")
        features = feature_matrix(list(queries), embeddings, use_text=self.card["use_text"],
                                  use_flags=self.card["use_flags"])
        return self.model.predict_proba(features)

    def save(self, folder: Path) -> None:
        save_model(self.model, self.card, folder, MODEL_FILE, CARD_FILE)

    @classmethod
    def load(cls, folder: Path | None = None) -> IntentClassifier:
        folder = Path(folder or DEFAULT_CLASSIFIER)
        model, card = load_model(folder, MODEL_FILE, CARD_FILE, f"retrain with `medrag train router --out {folder}` "
                                 "or set MEDRAG_ROUTER_MODEL to a trained folder", RouterModelError)
        return cls(model, card)
