"""``medrag train read`` and ``medrag eval read`` on real covid rows: the saved models reproduce the card's
held-out figures, no test patient is fitted on, and any file in the format can be evaluated."""

from __future__ import annotations

import csv
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from evaluation.read import evaluate_read, render_markdown
from medrag.datasets.covid import finding_class
from medrag.datasets.splits import DEFAULT_SPLIT
from medrag.read.reader import INPUTS, FindingReader
from training.read import read_cases, train_read

COVID_ROWS = 40
"""Every other-pneumonia row and this many COVID-19 rows: both classes land in the fitted and the test part."""


def _subset(data_dir: Path, path: Path, keep: Callable[[dict], bool]) -> Path:
    """Real metadata rows chosen by ``keep(row)``, their folder pointing at the real images."""
    source = data_dir / "cxr" / "covid" / "metadata.csv"
    with source.open(newline="") as handle:
        reader = csv.DictReader(handle)
        fields, rows = reader.fieldnames, list(reader)
    chosen = [row | {"folder": str((source.parent / row["folder"]).resolve())} for row in rows if keep(row)]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(chosen)
    return path


@pytest.fixture(scope="module")
def trained(config, data_dir, tmp_path_factory):
    folder = tmp_path_factory.mktemp("read")
    covid = iter(range(COVID_ROWS))

    def keep(row: dict) -> bool:
        label = finding_class(row["finding"])
        return label == "other pneumonia" or (label == "COVID-19" and next(covid, None) is not None)

    metadata = _subset(data_dir, folder / "metadata.csv", keep)
    card = train_read(config, metadata, folder / "model", progress=False)
    return metadata, folder / "model", card


def test_training_saves_models_card_and_curves_and_never_fits_a_test_patient(trained):
    metadata, model, card = trained
    assert {path.name for path in model.iterdir()} >= {"card.json", "image.skops", "image_note.skops",
                                                       "note.skops", "roc.png", "calibration.png"}
    cases = read_cases(metadata)
    test = {case.group for case in cases if DEFAULT_SPLIT.part(case.group) == "test"}
    fitted = {case.group for case in cases if DEFAULT_SPLIT.part(case.group) != "test"}
    assert test and fitted and not test & fitted
    assert card["test"]["image"]["groups"] == len(test)
    for inputs in INPUTS:
        assert card["selection"][inputs]["C"] in [float(c) for c in card["selection"][inputs]["by_C"]]
        assert 0 <= card["test"][inputs]["auc"] <= 1


def test_evaluating_the_saved_models_reproduces_the_held_out_figures(config, trained):
    metadata, model, card = trained
    report = evaluate_read(config.replace(read_model=model), metadata, progress=False)
    assert "test part" in report["scored"]
    for inputs in INPUTS:
        assert report["figures"][inputs]["auc"] == pytest.approx(card["test"][inputs]["auc"])
        assert report["figures"][inputs]["images"] == card["test"][inputs]["images"]
    table = render_markdown(report)
    assert all(f"| {inputs} |" in table for inputs in INPUTS) and "Brier of prevalence" in table
    assert FindingReader.load(model).card == card


def test_any_file_in_the_format_is_scored_in_full(config, data_dir, trained, tmp_path):
    _, model, _ = trained
    other = _subset(data_dir, tmp_path / "elsewhere.csv",
                    lambda row: finding_class(row["finding"]) in {"COVID-19", "other pneumonia"}
                    and zlib.crc32(row["filename"].encode()) % 4 == 0)
    report = evaluate_read(config.replace(read_model=model), other, out=tmp_path / "out", progress=False)
    assert report["scored"].startswith("every labelled image")
    assert report["figures"]["image"]["images"] == len(read_cases(other))
    assert {path.name for path in (tmp_path / "out").iterdir()} == {"read.json", "read.md", "read_roc.png",
                                                                    "read_calibration.png"}
