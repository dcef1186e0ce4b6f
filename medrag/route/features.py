"""What the scheduler sees of a query: which inputs are present, its text embedding, lexical cues.

The cues are a handful of word lists a radiologist would name (literature words, image findings,
symptoms); they are cheap, readable in the explanation, and help the embedding on short queries.
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

_WORD = re.compile(r"[a-z][a-z'-]*|\d+")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


CUES: dict[str, frozenset[str]] = {
    "literature": _words(
        "study studies trial trials randomized randomised cohort meta-analysis review evidence outcome outcomes "
        "efficacy effect effects effective associated association risk risks predict predictor predictors "
        "survival prevalence incidence mortality treatment therapy therapies compared versus improve improves "
        "reduce reduces increase increases population guideline guidelines"),
    "imaging": _words(
        "x-ray xray radiograph radiographs film films image images view pa ap lateral opacity opacities "
        "effusion effusions consolidation pneumothorax cardiomegaly infiltrate infiltrates atelectasis nodule "
        "nodules mass lung lungs heart mediastinum mediastinal costophrenic hilar lobe lobes hemidiaphragm "
        "pleural silhouette airspace interstitial bilateral left right upper lower chest rib ribs"),
    "symptoms": _words(
        "fever febrile cough coughing dyspnea dyspnoea breath pain sputum fatigue myalgia hypoxia hypoxemia "
        "saturation oxygen temperature admitted presented presenting history year-old old days weeks "
        "smoker tachycardia tachypnea chills"),
}
QUESTION_OPENERS = _words(
    "is are was were does do did can could should will would has have had what which how why when where who "
    "there")
FLAGS = ("has_image", "has_note", "has_question")
CUE_NAMES = (*FLAGS, "ends_with_question_mark", "question_opener", "log_words",
             *(f"{name}_words" for name in CUES))


@dataclasses.dataclass(frozen=True)
class Query:
    """One request as the user gave it: a question, a clinical note, whether an image came with it."""

    question: str = ""
    note: str = ""
    has_image: bool = False

    @property
    def text(self) -> str:
        """The text that is embedded and searched: question and note together."""
        return " ".join(part.strip() for part in (self.question, self.note) if part.strip())


def words(text: str) -> list[str]:
    """Lower-case words and numbers, as the cue lists spell them."""
    return _WORD.findall(text.lower())


def lexical_cues(query: Query) -> dict[str, float]:
    """Named, human-readable features: modality flags, question form, cue-word counts (log scale)."""
    tokens = words(query.text)
    cues = {
        "has_image": float(query.has_image),
        "has_note": float(bool(query.note.strip())),
        "has_question": float(bool(query.question.strip())),
        "ends_with_question_mark": float(query.text.rstrip().endswith("?")),
        "question_opener": float(bool(tokens) and tokens[0] in QUESTION_OPENERS),
        "log_words": float(np.log1p(len(tokens))),
    }
    for name, vocabulary in CUES.items():
        cues[f"{name}_words"] = float(np.log1p(sum(word in vocabulary for word in tokens)))
    return cues


def feature_matrix(queries: list[Query], embeddings: np.ndarray, *, use_text: bool = True,
                   use_flags: bool = True) -> np.ndarray:
    """Rows of [embedding | cues]; ``use_text``/``use_flags`` switch feature groups off for the ablation."""
    named = [lexical_cues(query) for query in queries]
    cues = np.array([[row[name] for name in CUE_NAMES] for row in named], dtype=np.float32)
    flag_columns = slice(0, len(FLAGS))
    text_columns = slice(len(FLAGS), len(CUE_NAMES))
    if not use_flags:
        cues[:, flag_columns] = 0.0
    if not use_text:
        cues[:, text_columns] = 0.0
        embeddings = np.zeros_like(embeddings)
    return np.hstack([embeddings.astype(np.float32), cues])
