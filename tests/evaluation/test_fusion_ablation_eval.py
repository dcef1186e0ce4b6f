"""The fusion ablation's split comes from the checkpoint's card; its gain over the retrieval order is paired."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.fusion import FULL, checkpoint_split, fusion_gain, render_markdown
from medrag.datasets.splits import DEFAULT_SPLIT
from medrag.fuse.checkpoint import DEFAULT_CHECKPOINT
from training.fusion_data import Candidate, FusionItem
from training.fusion_metrics import NO_FUSION

pytestmark = pytest.mark.unit


def _item(index: int, relevant_at: int) -> FusionItem:
    candidates = [Candidate("ImagingCase", f"c{index}-{rank}", rank == relevant_at, []) for rank in range(4)]
    return FusionItem("covid", f"q{index}", f"covid:p{index}", None, None, candidates, "COVID-19")


def _prediction(scores: list[float]) -> tuple[np.ndarray, list[np.ndarray]]:
    return np.array(scores, np.float32), [np.zeros(0, np.float32)] * len(scores)


def test_the_ablation_reads_the_split_named_in_the_shipped_checkpoint():
    split, card = checkpoint_split(DEFAULT_CHECKPOINT)
    assert split == DEFAULT_SPLIT and card["split"]["name"] == split.name


def test_gain_is_the_paired_per_query_difference_with_an_interval():
    items = [_item(index, relevant_at=index % 4) for index in range(40)]
    retrieval = [_prediction([3, 2, 1, 0]) for _ in items]  # the retrieval order: relevant at rank index % 4 + 1
    perfect = [_prediction([float(c.relevant) for c in item.candidates]) for item in items]
    worst = [_prediction([-float(c.relevant) for c in item.candidates]) for item in items]
    gain = fusion_gain(items, retrieval, [perfect, worst])["covid"]
    expected_mrr = np.mean([1 / (index % 4 + 1) for index in range(40)])
    assert gain["mrr"][NO_FUSION] == pytest.approx(expected_mrr)
    assert gain["hit@1"][NO_FUSION] == pytest.approx(0.25) and gain["hit@1"][FULL] == pytest.approx(0.5)
    assert gain["hit@1"]["gain"] == pytest.approx(0.25) and gain["mrr"]["queries"] == 40
    low, high = gain["hit@1"]["gain ci95"]
    assert 0 < low < 0.25 < high < 0.5, "the gain's interval covers it and excludes no gain here"
    none = fusion_gain(items, retrieval, [retrieval])["covid"]["mrr"]
    assert none["gain"] == 0.0 and none["gain ci95"] == [0.0, 0.0]


def test_the_report_names_the_split_and_shows_the_gain():
    items = [_item(index, relevant_at=1) for index in range(10)]
    retrieval = [_prediction([3, 2, 1, 0]) for _ in items]
    metrics = {"covid": {"mrr": {"mean": 0.5, "std": 0.0}}}
    part = {"items": 10, "groups": 10, "sha256": "x"}
    split = {"name": "medrag-v1", "checkpoint": "weights/fusion-default", "same_test_part_as_checkpoint": True,
             "parts": {"train": part, "validation": part, "test": part}}
    report = {"split": split,
              "seeds": [0], "results": {NO_FUSION: metrics, FULL: metrics},
              "fusion_gain": fusion_gain(items, retrieval, [retrieval])}
    markdown = render_markdown(report)
    assert "Split medrag-v1 (from the card of `weights/fusion-default`; same test part as that checkpoint: yes)" \
        in markdown
    assert "| covid | mrr | 10 | 0.500 [0.500, 0.500] | 0.500 [0.500, 0.500] | 0.000 [0.000, 0.000] |" in markdown
