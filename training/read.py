"""``medrag train read``: the model's read of a radiograph, COVID-19 vs other pneumonia, on the covid cases.

Features are the vectors the search already has: the joint image vector and the note's text vector (the note
de-identified as a query's would be). The named split every medrag model shares divides the patients, so the
joint model behind the vectors never trained on a test patient either. Validation alone is too small to choose
anything (7 other-pneumonia images of 4 patients, docs/experiments/image-trunks.md), so C is chosen by
patient-grouped cross-validation on train + validation, the shipped models are fitted on them, and the test part
is scored once: AUC with intervals that resample patients, Brier score beside the prevalence's, a calibration
curve and the ROC curves as PNG.

"Pneumonia-like vs no finding" is not trained: the data has 9 "no finding" images (4 / 1 / 4 by part).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score, roc_curve
from sklearn.model_selection import GroupKFold
from tqdm import tqdm

from medrag.config import Config
from medrag.datasets.covid import CovidCase, covid_cases
from medrag.datasets.splits import DEFAULT_SPLIT, Split
from medrag.imaging.radiograph import load_image_file
from medrag.metrics import grouped_auc_interval
from medrag.read.reader import INPUTS, FindingReader, fit_read_model, joint_identity, read_features
from medrag.reporting import pyplot, save_figure

TASK = "COVID-19 vs other pneumonia"
CLASSES = ("other pneumonia", "COVID-19")
"""(negative, positive): the probability the models give is that of COVID-19."""
C_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
FOLDS = 5
IMAGE_BATCH = 32


@dataclasses.dataclass
class ReadData:
    """The labelled cases of a metadata.csv-format file with their vectors (note vector None without a note)."""

    cases: list[CovidCase]
    labels: np.ndarray
    """1 for COVID-19, 0 for other pneumonia."""
    image_vectors: np.ndarray
    note_vectors: list[np.ndarray | None]

    def rows(self, inputs: str, indices: Sequence[int]) -> list[int]:
        """The indices that have what ``inputs`` needs (a note for "note" and "image + note")."""
        return [i for i in indices if inputs == "image" or self.note_vectors[i] is not None]

    def features(self, inputs: str, indices: Sequence[int]) -> np.ndarray:
        return np.stack([read_features(inputs, self.image_vectors[i], self.note_vectors[i]) for i in indices])


def read_cases(metadata_csv: Path) -> list[CovidCase]:
    """The cases the read learns from and is scored on: labelled COVID-19 or other pneumonia, image present."""
    return [case for case in covid_cases(metadata_csv) if case.finding_class in CLASSES and case.image_path.is_file()]


def read_data(metadata_csv: Path, encode_images: Any, encode_texts: Any, *, progress: bool = True) -> ReadData:
    """:func:`read_cases` encoded by ``encode_images`` (radiographs -> joint vectors) and ``encode_texts`` (notes ->
    text vectors)."""
    cases = read_cases(metadata_csv)
    if not cases:
        raise ValueError(f"{metadata_csv}: no readable image labelled COVID-19 or another pneumonia; a "
                         "metadata.csv-format file needs 'finding' values and the images in its folder")
    chunks = [encode_images([load_image_file(case.image_path) for case in cases[start:start + IMAGE_BATCH]])
              for start in tqdm(range(0, len(cases), IMAGE_BATCH), desc="images", unit="batch", disable=not progress)]
    with_note = [i for i, case in enumerate(cases) if case.note]
    vectors = iter(encode_texts([cases[i].note for i in with_note])) if with_note else iter(())
    notes = [next(vectors) if case.note else None for case in cases]
    return ReadData(cases, np.array([CLASSES.index(case.finding_class) for case in cases]),
                    np.concatenate(chunks), notes)


def choose_c(data: ReadData, inputs: str, indices: Sequence[int]) -> tuple[float, dict[str, dict[str, float]]]:
    """The C of the lowest out-of-fold log loss (patient-grouped folds), and the log loss and AUC of every C.

    Log loss, not AUC: the read is shown as a probability, so the choice rewards calibration as well as ranking
    (by AUC alone the image + note model picked a weak penalty and printed probabilities of 1.00)."""
    rows = data.rows(inputs, indices)
    features, labels = data.features(inputs, rows), data.labels[rows]
    groups = [data.cases[i].group for i in rows]
    scores = {}
    for c in C_GRID:
        predicted = np.zeros(len(rows))
        for train, held in GroupKFold(FOLDS).split(features, labels, groups):
            predicted[held] = fit_read_model(features[train], labels[train], c).predict_proba(features[held])[:, 1]
        scores[str(c)] = {"log_loss": float(log_loss(labels, predicted)),
                          "auc": float(roc_auc_score(labels, predicted))}
    best = min(C_GRID, key=lambda c: scores[str(c)]["log_loss"])
    return best, scores


def held_out_figures(reader: FindingReader, data: ReadData, indices: Sequence[int],
                     prevalence: float) -> dict[str, Any]:
    """Per input kind, on its own rows: AUC [patient bootstrap], Brier beside the constant ``prevalence``,
    accuracy at 0.5 beside the majority class; and, on the rows that have a note, every kind paired with the
    image alone (AUC minus the image's, with its interval)."""
    figures: dict[str, Any] = {}
    for inputs in reader.models:
        rows = data.rows(inputs, indices)
        labels = data.labels[rows]
        probability = reader.models[inputs].predict_proba(data.features(inputs, rows))[:, 1]
        auc = grouped_auc_interval(labels, {inputs: probability}, [data.cases[i].group for i in rows])
        majority = int(prevalence >= 0.5)
        figures[inputs] = {
            "auc": auc["auc"][inputs], "auc_ci95": auc["auc_ci95"][inputs],
            **{key: auc[key] for key in ("images", "groups", "positives", "negatives")},
            "brier": float(brier_score_loss(labels, probability)),
            "brier_prevalence": float(brier_score_loss(labels, np.full(len(rows), prevalence))),
            "accuracy": float(np.mean((probability >= 0.5) == labels)),
            "majority_accuracy": float(np.mean(labels == majority)),
        }
    noted = data.rows("note", indices)
    paired = {inputs: model.predict_proba(data.features(inputs, noted))[:, 1]
              for inputs, model in reader.models.items()}
    figures["paired_on_noted"] = grouped_auc_interval(data.labels[noted], paired, [data.cases[i].group for i in noted])
    return figures


def plot_read(reader: FindingReader, data: ReadData, indices: Sequence[int], folder: Path,
              prefix: str = "") -> list[Path]:
    """ROC curves and calibration curves of each input kind on the held-out rows: ``<prefix>roc.png`` and
    ``<prefix>calibration.png``."""
    from sklearn.calibration import calibration_curve

    plt = pyplot()
    roc, roc_axes = plt.subplots(figsize=(5, 5))
    calibration, calibration_axes = plt.subplots(figsize=(5, 5))
    for inputs, model in reader.models.items():
        rows = data.rows(inputs, indices)
        labels = data.labels[rows]
        probability = model.predict_proba(data.features(inputs, rows))[:, 1]
        false_positive, true_positive, _ = roc_curve(labels, probability)
        roc_axes.plot(false_positive, true_positive, label=f"{inputs} (AUC {roc_auc_score(labels, probability):.2f})")
        observed, predicted = calibration_curve(labels, probability, n_bins=5, strategy="quantile")
        calibration_axes.plot(predicted, observed, marker="o", label=inputs)
    roc_axes.plot([0, 1], [0, 1], ls="--", c="grey", label="chance")
    roc_axes.set(xlabel="false positive rate", ylabel="true positive rate",
                 title=f"{TASK}\nheld-out patients (positive: COVID-19)")
    calibration_axes.plot([0, 1], [0, 1], ls="--", c="grey", label="perfect calibration")
    calibration_axes.set(xlabel="predicted P(COVID-19), quantile bins", ylabel="observed share COVID-19",
                         title="calibration on held-out patients")
    for axes in (roc_axes, calibration_axes):
        axes.legend(loc="lower right", fontsize=8)
    return [save_figure(roc, folder / f"{prefix}roc.png"),
            save_figure(calibration, folder / f"{prefix}calibration.png")]


def train_read(config: Config, metadata_csv: Path, out: Path, *, split: Split = DEFAULT_SPLIT,
               progress: bool = True) -> dict[str, Any]:
    """Choose C per input kind, fit on train + validation, score the test part, save models, card and plots."""
    from medrag.encode.joint import JointEncoder
    from medrag.encode.text import TextEncoder

    started = time.time()
    joint = JointEncoder.load(config.joint_model)
    text = TextEncoder(config.text_model)
    data = read_data(metadata_csv, joint.encode_images, text.encode, progress=progress)
    train, validation, test = _divide(data, split)
    fitted_on = train + validation
    if not test or len(set(data.labels[fitted_on])) < 2:
        raise ValueError(f"{metadata_csv}: split {split.name!r} leaves {len(fitted_on)} cases to fit on and "
                         f"{len(test)} to test; both classes must be in the fitted part and the test part non-empty")
    models, chosen = {}, {}
    for inputs in INPUTS:
        rows = data.rows(inputs, fitted_on)
        c, by_c = choose_c(data, inputs, fitted_on)
        chosen[inputs] = {"C": c, "by_C": by_c, "images": len(rows)}
        models[inputs] = fit_read_model(data.features(inputs, rows), data.labels[rows], c)
    prevalence = float(data.labels[fitted_on].mean())
    test_groups = {data.cases[i].group for i in test}
    card: dict[str, Any] = {
        "name": "finding-read-covid", "task": TASK, "classes": list(CLASSES),
        "joint_model": joint_identity(joint.source), "text_model": "/".join(text.model_path.parts[-2:]),
        "trained_on": f"{metadata_csv.name}: {len(fitted_on)} images of split {split.name} train + validation",
        "trained_on_sha256": hashlib.sha256(metadata_csv.read_bytes()).hexdigest(),
        "split": split.describe(data.cases), "training_prevalence_covid": prevalence,
        "selection": {"folds": FOLDS, "grouped_by": "patient group", "by": "out-of-fold log loss", **chosen},
        "held_out": f"patients never trained on (split {split.name} test part: {len(test)} images of "
                    f"{len(test_groups)} patients)",
    }
    reader = FindingReader(models, card)
    card["test"] = held_out_figures(reader, data, test, prevalence)
    card["seconds"] = round(time.time() - started, 1)
    reader.save(out)
    plot_read(reader, data, test, out)
    return card


def _divide(data: ReadData, split: Split) -> tuple[list[int], list[int], list[int]]:
    """Indices of the cases in each part of ``split``."""
    parts: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    for index, case in enumerate(data.cases):
        parts[split.part(case.group)].append(index)
    return parts["train"], parts["validation"], parts["test"]
