"""The lung-attention evaluation's pure parts: per-case rows, summaries, example choice and the report files."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from evaluation.attention import (
    ReferenceMasks,
    case_row,
    case_views,
    dice,
    evaluate_lung_attention,
    pick_examples,
    render_markdown,
    summarise,
    write_report,
)
from knowledge_sources import DEMO_DIR
from medrag.datasets.covid import CovidCase
from medrag.imaging.lungs import mask_on_grid


def _radiograph(path: Path) -> Path:
    """A phantom chest (bright body, two dark lungs) written as a PNG."""
    rows, cols = np.ogrid[:240, :200]
    body = ((rows - 120) / 115) ** 2 + ((cols - 100) / 92) ** 2 <= 1
    lungs = (((rows - 100) / 62) ** 2 + ((cols - 58) / 26) ** 2 <= 1) | (((rows - 100) / 62) ** 2
                                                                         + ((cols - 142) / 26) ** 2 <= 1)
    Image.fromarray((255 * (np.where(body, 0.75, 0.05) - 0.45 * lungs)).astype(np.uint8)).save(path)
    return path


def _case(path: Path, name: str, finding: str) -> CovidCase:
    return CovidCase(name, "fever and cough", finding, f"covid:{name}", path)


@pytest.fixture
def report(tmp_path: Path) -> dict:
    image = _radiograph(tmp_path / "chest.png")
    cells = mask_on_grid(np.asarray(Image.open(image)) < 100)  # the dark pixels are the phantom's lungs
    on_lungs = cells / cells.sum()
    uniform = np.full((7, 7), 1 / 49)
    rows = [case_row(_case(image, f"case{i}.png", finding), "PA", 0.2, cells,
                     [on_lungs if i % 2 else uniform, uniform])
            for i, finding in enumerate(["COVID-19", "COVID-19", "no finding", "other pneumonia"])]
    return {"file": "metadata.csv", "tenant": "t", "k": 2, "split": "medrag-v1", "labelled_cases": 6,
            "skipped": {"lateral": 1, "no_reference_mask": 0, "no_lung_mask": 1, "no_attention": 0},
            "model_input": 224, "masks": "segmentation", "segmentation_dice": None,
            "overall": summarise(rows), "by_class": {"COVID-19": summarise(rows[:2])}, "cases": rows,
            "examples": [{"source_id": row["source_id"], "attention_top1": on_lungs.tolist()}
                         for row in pick_examples(rows, 3)]}


def test_rows_compare_each_share_with_the_uniform_baseline(report):
    looking, uniform = report["cases"][1], report["cases"][0]
    assert uniform["share"] == pytest.approx(uniform["baseline"])
    assert looking["share_top1"] > looking["baseline"]
    assert looking["share"] == pytest.approx((looking["share_top1"] + looking["baseline"]) / 2)
    assert uniform["peak_ratio"] == pytest.approx(1.0) and looking["peak_ratio"] > 1.0


def test_summary_pairs_share_and_baseline(report):
    overall = report["overall"]
    assert overall["cases"] == 4 and overall["above_baseline"] == 0.5
    gains = [row["share"] - row["baseline"] for row in report["cases"]]
    assert overall["difference"] == pytest.approx(np.mean(gains))
    low, high = overall["difference_interval"]
    assert min(gains) <= low <= overall["difference"] <= high <= max(gains)
    assert summarise([]) == {"cases": 0}


def test_examples_span_the_best_and_the_worst_gain(report):
    rows = report["cases"]
    picked = pick_examples(rows, 2)
    gains = [row["share_top1"] - row["baseline"] for row in picked]
    assert gains[0] == max(r["share_top1"] - r["baseline"] for r in rows)
    assert gains[1] == min(r["share_top1"] - r["baseline"] for r in rows)
    assert pick_examples(rows[:1], 6) == rows[:1]


def test_views_come_from_the_metadata(tmp_path):
    csv_path = tmp_path / "metadata.csv"
    csv_path.write_text("filename,view\na.png,PA\nb.png, l \n")
    assert case_views(csv_path) == {"a.png": "PA", "b.png": "L"}


def test_report_files(report, tmp_path):
    paths = write_report(report, tmp_path / "out")
    assert [path.name for path in paths] == ["attention.json", "attention.md", "attention_examples.png"]
    assert json.loads(paths[0].read_text())["overall"]["cases"] == 4
    markdown = paths[1].read_text()
    assert markdown == render_markdown(report)
    assert "| all | 4 |" in markdown and "| COVID-19 | 2 |" in markdown and "1 lateral views skipped" in markdown
    assert Image.open(paths[2]).size[0] > 500


def test_reference_masks_come_from_a_zip_or_a_folder_by_image_file_name(tmp_path):
    mask = np.zeros((40, 30), np.uint8)
    mask[10:30, 5:12] = 255
    folder = tmp_path / "masks" / "lungs"
    folder.mkdir(parents=True)
    Image.fromarray(mask).save(folder / "case1.png")
    archive = tmp_path / "masks.zip"
    with zipfile.ZipFile(archive, "w") as written:
        written.write(folder / "case1.png", "semantic_masks/case1.png")
    for source in (tmp_path / "masks", archive):
        masks = ReferenceMasks(source)
        assert "case1.png" in masks and "case2.png" not in masks
        scaled = masks.mask("case1.png", (80, 60))
        assert scaled.shape == (80, 60) and scaled.sum() == 4 * (mask > 0).sum()
        assert masks.mask("case2.png", (80, 60)) is None
    with pytest.raises(FileNotFoundError, match="V7 Labs zip"):
        ReferenceMasks(tmp_path / "nothing.zip")


def test_dice_of_identical_disjoint_and_empty_masks():
    left = np.zeros((4, 4), bool)
    left[:, :2] = True
    assert dice(left, left) == 1.0 and dice(left, ~left) == 0.0
    assert dice(np.zeros_like(left), left) == 0.0


def test_the_evaluation_searches_each_case_and_accounts_for_every_one(assistant, knowledge, tmp_path):
    metadata = DEMO_DIR / "covid" / "metadata.csv"
    report = evaluate_lung_attention(assistant, metadata, tenant=knowledge, split=None, k=3, progress=False)
    rows, skipped = report["cases"], report["skipped"]
    assert report["labelled_cases"] == 8 and report["masks"] == "segmentation"
    assert len(rows) + sum(skipped.values()) == report["labelled_cases"] and rows
    for row in rows:
        assert 0 < row["baseline"] < 1 and 0 <= row["share"] <= 1 and row["items"] == 3
        assert row["peak_ratio"] >= 1
    assert report["overall"]["cases"] == len(rows)
    written = write_report(report, tmp_path / "out")
    assert {path.name for path in written} == {"attention.json", "attention.md", "attention_examples.png"}
    assert json.loads((tmp_path / "out" / "attention.json").read_text())["overall"] == report["overall"]
