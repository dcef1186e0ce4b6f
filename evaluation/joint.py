"""Joint-space metrics: cross-modal retrieval and zero-shot finding classification.

Pairs are aligned by index (image i belongs with text i). AUC comes from scikit-learn.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from medrag.config import Config
from medrag.encode.pairs import FINDING_CLASSES, covid_pairs
from medrag.ingest.image import load_image_file

PROMPTS = {
    "COVID-19": ["chest x-ray of COVID-19 pneumonia", "bilateral peripheral ground-glass opacities, COVID-19"],
    "other pneumonia": ["chest x-ray of bacterial pneumonia", "lobar consolidation from pneumonia",
                        "pneumocystis pneumonia with interstitial opacities"],
    "no finding": ["normal chest x-ray", "no acute cardiopulmonary abnormality, clear lungs"],
}


def _ranking_metrics(similarity: np.ndarray, relevant: np.ndarray, ks: tuple[int, ...]) -> dict[str, float]:
    """Hit rate at k and MRR of the first relevant candidate.

    Written here because candidates can be equally right (several cases share the text "Finding:
    COVID-19."), and scikit-learn's top-k accuracy knows one right answer per query. Ties with a
    wrong candidate count against the query (pessimistic), so duplicates cannot inflate the score.
    """
    best_relevant = np.where(relevant, similarity, -np.inf).max(axis=1)
    first_rank = (np.where(relevant, -np.inf, similarity) >= best_relevant[:, None]).sum(axis=1) + 1
    metrics = {f"recall@{k}": float(np.mean(first_rank <= k)) for k in ks}
    metrics["mrr"] = float(np.mean(1.0 / first_rank))
    return metrics


def retrieval_metrics(images: np.ndarray, texts: np.ndarray, captions: list[str],
                      ks: tuple[int, ...] = (1, 5, 10)) -> dict[str, dict]:
    """image->text and text->image recall@k and MRR; pair i is relevant, and so is any pair with the same text."""
    similarity = images @ texts.T
    relevant = np.array([[a == b for b in captions] for a in captions])
    return {"image_to_text": _ranking_metrics(similarity, relevant, ks),
            "text_to_image": _ranking_metrics(similarity.T, relevant, ks)}


def zero_shot_auc(images: np.ndarray, labels: list[str], encode_texts) -> dict[str, float]:
    """One-vs-rest AUC per finding class from text prompts (mean prompt embedding per class), and the macro mean."""
    class_vectors = []
    for name in FINDING_CLASSES:
        vectors = encode_texts(PROMPTS[name])
        mean = vectors.mean(axis=0)
        class_vectors.append(mean / np.linalg.norm(mean))
    scores = images @ np.stack(class_vectors).T
    result = {}
    for index, name in enumerate(FINDING_CLASSES):
        truth = np.array([label == name for label in labels])
        if 0 < truth.sum() < len(truth):
            result[name] = float(roc_auc_score(truth, scores[:, index]))
    result["macro"] = float(np.mean(list(result.values()))) if result else float("nan")
    return result


def evaluate_joint_model(config: Config, metadata_csv: Path) -> dict[str, Any]:
    """The configured joint model on any metadata.csv-format dataset: retrieval, zero-shot AUC, throughput."""
    from medrag.encode.joint import JointEncoder

    encoder = JointEncoder.load(config.joint_model)
    pairs = covid_pairs(metadata_csv)
    images = [load_image_file(pair.image_path) for pair in pairs]
    started = time.perf_counter()
    image_vectors = encoder.encode_images(images)
    image_seconds = time.perf_counter() - started
    started = time.perf_counter()
    text_vectors = encoder.encode_texts([pair.text for pair in pairs])
    text_seconds = time.perf_counter() - started
    labelled = [i for i, pair in enumerate(pairs) if pair.finding_class]
    return {
        "model": encoder.source,
        "dataset": str(metadata_csv),
        "pairs": len(pairs),
        **retrieval_metrics(image_vectors, text_vectors, [pair.text for pair in pairs]),
        "zero_shot_auc": zero_shot_auc(image_vectors[labelled], [pairs[i].finding_class for i in labelled],
                                       encoder.encode_texts),
        "images_per_second": round(len(pairs) / image_seconds, 1),
        "texts_per_second": round(len(pairs) / text_seconds, 1),
    }
