"""Joint-space metrics: cross-modal retrieval and zero-shot finding classification.

Pairs are aligned by index (image i belongs with text i). AUC comes from scikit-learn. The held-out figures
use the split named in the model's card, so they cover exactly the patients ``medrag train joint`` left out.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from medrag.config import Config
from medrag.datasets.covid import covid_pairs
from medrag.datasets.pairs import Pair
from medrag.datasets.splits import Split, card_split
from medrag.imaging.radiograph import load_image_file
from medrag.metrics import retrieval_metrics, zero_shot_auc


def joint_split(config: Config) -> Split | None:
    """The split recorded in the configured joint model's card; None for a model medrag did not train
    (an open_clip folder or a hub model: it has no medrag split, and no held-out part we could name)."""
    from medrag.encode.joint import DEFAULT_CHECKPOINT, PARTIAL_CONFIG

    card_path = Path(config.joint_model or DEFAULT_CHECKPOINT) / PARTIAL_CONFIG
    if not card_path.is_file():
        return None
    return card_split(json.loads(card_path.read_text()), str(card_path))


def _metrics(pairs: list[Pair], images: np.ndarray, texts: np.ndarray, encode_texts: Any) -> dict[str, Any]:
    labelled = [i for i, pair in enumerate(pairs) if pair.finding_class]
    return {"pairs": len(pairs), **retrieval_metrics(images, texts, [pair.text for pair in pairs]),
            "zero_shot_auc": zero_shot_auc(images[labelled], [pairs[i].finding_class for i in labelled],
                                           encode_texts)}


def evaluate_joint_model(config: Config, metadata_csv: Path) -> dict[str, Any]:
    """The configured joint model on any metadata.csv-format dataset: retrieval, zero-shot AUC, throughput; and
    the same on the pairs whose patients are in the test part of the model's split (``held_out``)."""
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
    split = joint_split(config)
    held_out = [i for i, pair in enumerate(pairs) if split is not None and split.part(pair.group) == "test"]
    return {
        "model": encoder.source,
        "dataset": str(metadata_csv),
        **_metrics(pairs, image_vectors, text_vectors, encoder.encode_texts),
        "split": split.name if split else None,
        "held_out": _metrics([pairs[i] for i in held_out], image_vectors[held_out], text_vectors[held_out],
                             encoder.encode_texts) if held_out else None,
        "images_per_second": round(len(pairs) / image_seconds, 1),
        "texts_per_second": round(len(pairs) / text_seconds, 1),
    }
