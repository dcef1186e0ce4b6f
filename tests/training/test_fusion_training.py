"""Training, checkpoints and the reranker at query time, on supervision from the real pipeline."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from medrag.datasets.splits import Split
from medrag.fuse import FusionConfig
from medrag.fuse.checkpoint import load_checkpoint
from medrag.fuse.reranker import FusionReranker
from training.fusion import TrainOptions, fit, predict, split_items, train_fusion
from training.fusion_losses import FusionLossConfig
from training.fusion_metrics import CASES_FIRST, NO_FUSION, evaluate, retrieval_prediction

SMALL_REAL = FusionConfig(d_model=32, heads=2)
"""The real input sizes (MiniLM 384, EfficientNet-Lite0 1280 x 7 x 7) with a small model."""
OPTIONS = TrainOptions(epochs=3, batch_size=8, split=Split("tiny", (0.6, 0.2), 0))
"""A split with a larger validation part for the small test set."""


@pytest.fixture(scope="module")
def trained(fusion_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("fusion-checkpoint")
    card = train_fusion(fusion_set.data, out, OPTIONS, config=SMALL_REAL, progress=False)
    return out, card


def test_split_keeps_groups_apart(fusion_set):
    parts = split_items(fusion_set.data, OPTIONS)
    groups = [{item.group for item in part} for part in parts]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    assert sum(len(part) for part in parts) == len(fusion_set.data.items)


def test_training_writes_a_checkpoint_card_and_loss_curve(trained, fusion_set):
    out, card = trained
    assert (out / "fusion.safetensors").is_file() and (out / "loss_curve.png").stat().st_size > 1000
    assert len(card["history"]) == OPTIONS.epochs and 1 <= card["best_epoch"] <= OPTIONS.epochs
    assert all(np.isfinite(row["total"]) for row in card["history"])
    assert set(card["test"]) == {"fusion", NO_FUSION, CASES_FIRST}
    assert card["split"] == OPTIONS.split.describe(fusion_set.data.items)


def test_checkpoint_reloads_to_the_model_that_was_scored(trained, fusion_set):
    out, card = trained
    model, saved = load_checkpoint(out)
    assert model.config == SMALL_REAL and saved["best_epoch"] == card["best_epoch"]
    _, _, test = split_items(fusion_set.data, OPTIONS)
    assert evaluate(test, predict(model, fusion_set.data, test)) == card["test"]["fusion"]


def test_same_seed_same_model_and_another_seed_differs(fusion_set):
    train, validation, _ = split_items(fusion_set.data, OPTIONS)
    short = dataclasses.replace(OPTIONS, epochs=1)
    runs = [fit(fusion_set.data, train, validation, SMALL_REAL, FusionLossConfig(), dataclasses.replace(short, seed=s),
                progress=False) for s in (0, 0, 1)]
    scores = [predict(run.model, fusion_set.data, validation[:4]) for run in runs]
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(scores[0], scores[1], strict=True))
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(scores[0], scores[2], strict=True))


def test_retrieval_baseline_is_the_retrieval_order(fusion_set):
    items = [item for item in fusion_set.data.items if item.task == "pubmedqa"]
    report = evaluate(items, [retrieval_prediction(fusion_set.data, item) for item in items])
    first_relevant = [next((rank for rank, c in enumerate(item.candidates, 1) if c.relevant), None) for item in items]
    expected = np.mean([1 / rank if rank else 0.0 for rank in first_relevant])
    assert report["pubmedqa"]["mrr"] == pytest.approx(expected)
    assert report["pubmedqa"]["hit@1"] == pytest.approx(np.mean([rank == 1 for rank in first_relevant]))


def test_reranker_reorders_candidates_and_returns_attention_maps(trained, fusion_set):
    out, _ = trained
    reranker = FusionReranker.load(out)
    data = fusion_set.data
    item = next(item for item in data.items if item.task == "covid" and item.text is not None)
    candidates = [(data.sentence_vectors[(c.collection, c.source_id)], c.collection) for c in item.candidates]
    fused = reranker(item.text, item.image, candidates, selected=4)
    count = len(candidates)
    assert sorted(fused.order) == list(range(count))
    assert fused.scores[fused.order[0]] == max(fused.scores)
    assert [len(s) for s in fused.sentence_scores] == [len(v) for v, _ in candidates]
    assert sum(map(sum, fused.sentence_attention)) == pytest.approx(1.0, abs=1e-4)
    assert fused.image_attention.shape == (count, 7, 7)
    np.testing.assert_allclose(fused.image_attention.sum(axis=(1, 2)), 1.0, atol=1e-5)
    assert len(fused.selected) == 4 and fused.selected[0][2] >= fused.selected[-1][2]
    assert 0.0 <= fused.gate <= 1.0
    text_only = reranker(item.text, None, candidates)
    assert text_only.image_attention is None and text_only.gate == 0.0
