"""Yes / no / maybe decisions for PubMedQA-style questions, with a confidence.

Two deciders: ``DecisionModel``, a logistic regression trained on PubMedQA (``medrag train decision``) over
the question, the evidence sentences and their negation / hedge / significance cues; and the language
model's own probabilities of "yes", "no" and "maybe" after the evidence prompt (generative mode).
Saved with skops (no pickle), like the router's intent model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from medrag.generate.evidence import EvidenceSentence
from medrag.sklearn_io import load_model, save_model
from medrag.types import Decision

LABELS = ("yes", "no", "maybe")
DEFAULT_MODEL = Path(__file__).parent / "weights" / "decision-pubmedqa"
MODEL_FILE, CARD_FILE = "decision.skops", "card.json"
_WH = re.compile(r"^\W*(what|which|how|why|when|where|who|whom|whose)\b", re.IGNORECASE)
# Cue word lists, ours: PubMedQA answers turn on whether the results report an effect, no effect, or
# hedge; no maintained library scores that for abstracts (medspacy's ConText marks negated entities).
_CUES = {
    "negated": re.compile(r"\b(no|not|neither|nor|without|failed to|did not|does not|was not|were not|"
                          r"no significant|not significant(ly)?|similar|comparable|unchanged)\b", re.I),
    "no_difference": re.compile(r"\b(no (significant|statistical(ly)?)? ?(difference|association|effect|"
                                r"correlation|change)|did not differ|not (significantly )?(different|associated))",
                                re.I),
    "hedged": re.compile(r"\b(may|might|could|possibl[ey]|unclear|uncertain|suggest\w*|further (studies|research)|"
                         r"warrant\w*|limited|inconclusive)\b", re.I),
    "significant": re.compile(r"\b(significant(ly)?|associated with|increase[sd]?|decrease[sd]?|improve[sd]?|"
                              r"reduce[sd]?|higher|lower|predict\w*|effective)\b", re.I),
    "p_small": re.compile(r"\bp\s*[<=]\s*0?\.0[0-4]\d*", re.I),
    "p_large": re.compile(r"\bp\s*[>=]\s*0?\.(0[5-9]|[1-9])\d*|\bp\s*=\s*(ns|n\.s\.)", re.I),
}


def is_yes_no_question(question: str) -> bool:
    """A question a yes / no / maybe answers: it ends in "?" and its last clause is not a wh-question."""
    text = question.strip()
    if not text.endswith("?"):
        return False
    last = re.split(r"[.:;]\s+", text)[-1]
    return not _WH.match(last)


def decision_from(probabilities: Sequence[float], decider: str, reliability: str) -> Decision:
    total = float(sum(probabilities))
    values = {label: float(p) / total for label, p in zip(LABELS, probabilities, strict=True)}
    label = max(values, key=values.__getitem__)
    return Decision(label, values[label], values, decider, reliability)


def decision_features(question_vector: np.ndarray, evidence: Sequence[EvidenceSentence]) -> np.ndarray:
    """One row: the question, the relevance-weighted evidence, their product, and the cue rates of the evidence."""
    usable = [sentence for sentence in evidence if not sentence.addresses_model]
    if usable:
        weights = np.exp(np.array([sentence.relevance for sentence in usable]) * 10)
        weights /= weights.sum()
        mean = (weights[:, None] * np.stack([sentence.vector for sentence in usable])).sum(0)
        cues = [sum(w * bool(pattern.search(s.text)) for w, s in zip(weights, usable, strict=True))
                for pattern in _CUES.values()]
        best = max(sentence.relevance for sentence in usable)
    else:
        mean, cues, best = np.zeros_like(question_vector), [0.0] * len(_CUES), 0.0
    return np.concatenate([question_vector, mean, question_vector * mean, cues, [best]]).astype(np.float32)


class DecisionModel:
    def __init__(self, pipeline: Pipeline, card: dict[str, Any]) -> None:
        self.pipeline = pipeline
        self.card = card

    @classmethod
    def fit(cls, features: np.ndarray, labels: Sequence[str], card: dict[str, Any], c: float = 0.05) -> DecisionModel:
        pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
        pipeline.fit(features, list(labels))
        return cls(pipeline, {**card, "C": c})

    def __call__(self, features: np.ndarray) -> Decision:
        probabilities = self.pipeline.predict_proba(features[None])[0]
        by_label = dict(zip(self.pipeline.classes_, probabilities, strict=True))
        return decision_from([by_label.get(label, 0.0) for label in LABELS], self.name, self.reliability)

    @property
    def reliability(self) -> str:
        """The card's cross-validated accuracy beside the majority-class baseline."""
        cross_validated = self.card.get("cross_validation", {}).get("metrics", {})
        if "accuracy" not in cross_validated:
            return "not measured"
        return (f"cross-validated accuracy {cross_validated['accuracy']:.3f} on {self.card.get('trained_on', '?')}, "
                f"against {self.card['majority_baseline_accuracy']:.3f} for always answering the majority class")

    @property
    def name(self) -> str:
        return f"{self.card.get('name', 'decision')} (logistic regression)"

    def save(self, folder: Path) -> None:
        save_model(self.pipeline, self.card, folder, MODEL_FILE, CARD_FILE)

    @classmethod
    def load(cls, folder: Path | None = None) -> DecisionModel:
        fix = "train one with `medrag train decision QUESTIONS.json`"
        return cls(*load_model(folder or DEFAULT_MODEL, MODEL_FILE, CARD_FILE, fix))
