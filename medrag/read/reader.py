"""The model's read of a radiograph: calibrated probabilities for a finding our data labels, shown with the AUC
measured on held-out patients (``medrag train read``).

The read is a logistic regression over vectors the search already computes: the joint image vector, and for
"image + note" also the note's text vector. So it adds well under a millisecond to an image query and needs no
second image model. It is fitted without class weights, so its probabilities follow the training prevalence
(a calibration curve is in the model card) rather than a balanced 50/50 that would overstate the rarer class.

It fits one joint model: the card records the identity (name and weights digest) of the joint checkpoint whose
vectors it was trained on, and :meth:`FindingReader.fits` refuses any other (its vectors mean something else).
Saved with skops (no pickle), like the router's and the decision model.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from medrag.sklearn_io import load_model, save_model
from medrag.types import ImageRead

DEFAULT_MODEL = Path(__file__).parent / "weights" / "finding-read"
CARD_FILE = "card.json"
INPUTS = {"image": "image.skops", "image + note": "image_note.skops", "note": "note.skops"}
"""Each input kind and its model file. "note" is the comparison the card reports (what the words alone give); it
is never shown as a read of the image."""
SHOWN = ("image", "image + note")
FIX = "train one with `medrag train read` (a few minutes on a CPU)"
CHEST = frozenset({"CHEST", "THORAX", "LUNG", "LUNGS"})
"""``BodyPartExamined`` values of the radiographs the read was trained on (the covid set holds chest films only)."""


def joint_identity(source: str) -> str:
    """The part of a ``JointEncoder.source`` that names the weights and not the folder they sit in:
    "/x/joint-lite0-minilm (medrag joint lite0-minilm, 1a2b3c4d5e6f)" -> "medrag joint lite0-minilm, 1a2b3c4d5e6f"."""
    return source[source.rfind("(") + 1:].rstrip(")") if source.endswith(")") else source


def read_features(inputs: str, image_vector: np.ndarray | None, note_vector: np.ndarray | None) -> np.ndarray:
    """The feature row of one input kind: the image vector, the note vector, or both side by side."""
    parts = {"image": [image_vector], "image + note": [image_vector, note_vector], "note": [note_vector]}[inputs]
    if any(part is None for part in parts):
        raise ValueError(f"a read from {inputs!r} needs {' and '.join(inputs.split(' + '))} vectors")
    return np.concatenate([np.asarray(part, dtype=np.float32).ravel() for part in parts])


def fit_read_model(features: np.ndarray, labels: np.ndarray, c: float) -> Pipeline:
    """Standardised features, an L2 logistic regression, no class weights (calibrated to the training mix)."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000)).fit(features, labels)


class FindingReader:
    """The read models of one task (two classes) for each input kind, with the card that measured them."""

    def __init__(self, models: Mapping[str, Pipeline], card: dict[str, Any]) -> None:
        self.models = dict(models)
        self.card = card
        self.classes: tuple[str, str] = tuple(card["classes"])  # (negative, positive): label 1 is classes[1]

    @property
    def name(self) -> str:
        return f"{self.card.get('name', 'finding-read')} (logistic regression over joint vectors)"

    def fits(self, joint_source: str) -> bool:
        """True when ``joint_source`` is the joint model these reads were trained on."""
        return joint_identity(joint_source) == self.card.get("joint_model")

    def fits_text(self, text_model: str | Path) -> bool:
        """True when note vectors from ``text_model`` (a sentence-transformers folder) are what the image + note
        model was trained on; compared by the folder's last two parts, as the card records them."""
        return "/".join(Path(text_model).parts[-2:]) == self.card.get("text_model")

    def refusal(self, body_part: str | None) -> str | None:
        """Why the read does not apply to an image whose DICOM header names ``body_part`` (None: it applies; a
        PNG/JPEG or a header without the element is taken to be a chest radiograph)."""
        if body_part is None or body_part.strip().upper() in CHEST:
            return None
        return (f"no model read of the image: its DICOM header says BodyPartExamined {body_part!r}, and "
                f"{self.name} was trained on chest radiographs only")

    def probability(self, inputs: str, image_vector: np.ndarray | None, note_vector: np.ndarray | None) -> float:
        """P(positive class) from one input kind."""
        model = self.models[inputs]
        return float(model.predict_proba(read_features(inputs, image_vector, note_vector)[None])[0, 1])

    def read(self, image_vector: np.ndarray, note_vector: np.ndarray | None = None) -> list[ImageRead]:
        """The image's read, and the image + note read when a note vector is given."""
        reads = []
        for inputs in SHOWN:
            if inputs not in self.models or (inputs == "image + note" and note_vector is None):
                continue
            positive = self.probability(inputs, image_vector, note_vector)
            measured = self.card["test"][inputs]
            reads.append(ImageRead(self.card["task"], inputs, {self.classes[0]: 1 - positive,
                                                               self.classes[1]: positive},
                                   measured["auc"], tuple(measured["auc_ci95"]),
                                   f"{measured['images']} images of {measured['groups']} patients never trained on",
                                   self.name))
        return reads

    def save(self, folder: Path) -> None:
        for inputs, model in self.models.items():
            save_model(model, self.card, folder, INPUTS[inputs], CARD_FILE)

    @classmethod
    def load(cls, folder: Path | None = None) -> FindingReader:
        folder = folder or DEFAULT_MODEL
        models, card = {}, {}
        for inputs, file_name in INPUTS.items():
            if (folder / file_name).is_file() or inputs == "image":  # the image model must exist
                models[inputs], card = load_model(folder, file_name, CARD_FILE, FIX)
        return cls(models, card)
