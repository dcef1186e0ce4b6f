"""The model's read of the image on any metadata.csv-format file: how well the image, the image + note and the
note alone tell COVID-19 from other pneumonia.

For the file the read was trained on, only the patients of its split's test part count (``held_out``); for any
other file every labelled image does (``all``), since no medrag model saw those patients. AUCs come with
intervals that resample patients, and each input's AUC is paired with the image's on the images that have a
note. Baselines beside them: a constant prevalence (Brier) and the majority class (accuracy); chance AUC is 0.5.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medrag.config import Config
from medrag.datasets.splits import card_split
from medrag.read.reader import DEFAULT_MODEL, INPUTS, FindingReader
from medrag.reporting import write_json_and_markdown
from training.read import held_out_figures, plot_read, read_data


def evaluate_read(config: Config, metadata_csv: Path, *, out: Path | None = None,
                  progress: bool = True) -> dict[str, Any]:
    """The configured read model (``config.read_model``) on ``metadata_csv``; with ``out``, read.json, read.md,
    read_roc.png and read_calibration.png are written there."""
    from medrag.encode.joint import JointEncoder
    from medrag.encode.text import TextEncoder

    folder = config.read_model or DEFAULT_MODEL
    reader = FindingReader.load(folder)
    joint = JointEncoder.load(config.joint_model)
    if not reader.fits(joint.source):
        raise ValueError(f"{folder} was trained on the joint model {reader.card.get('joint_model')!r}, not on "
                         f"{joint.source}; evaluate with that joint model or retrain with `medrag train read`")
    data = read_data(metadata_csv, joint.encode_images, TextEncoder(config.text_model).encode, progress=progress)
    same_file = hashlib.sha256(metadata_csv.read_bytes()).hexdigest() == reader.card.get("trained_on_sha256")
    split = card_split(reader.card, str(folder))
    scored = [i for i, case in enumerate(data.cases) if not same_file or split.part(case.group) == "test"]
    prevalence = float(reader.card["training_prevalence_covid"])
    report = {"file": str(metadata_csv), "model": reader.name, "task": reader.card["task"],
              "scored": f"split {split.name} test part (the file the read was trained on)" if same_file
              else "every labelled image (no medrag model trained on this file)",
              "training_prevalence_covid": prevalence,
              "figures": held_out_figures(reader, data, scored, prevalence)}
    if out is not None:
        write_json_and_markdown(report, render_markdown(report), out, "read")
        plot_read(reader, data, scored, out, prefix="read_")
    return report


def render_markdown(report: Mapping[str, Any]) -> str:
    figures = report["figures"]
    lines = [f"# Model read: {report['task']}", "",
             f"`{report['file']}`; scored: {report['scored']}. Positive class COVID-19; chance AUC 0.5.", "",
             "| input | images | patients | COVID-19 / other | AUC [95% CI, patient bootstrap] | Brier | Brier of "
             "prevalence | accuracy | majority accuracy |", "|---|---|---|---|---|---|---|---|---|"]
    for inputs in INPUTS:
        row = figures[inputs]
        low, high = row["auc_ci95"]
        lines.append(f"| {inputs} | {row['images']} | {row['groups']} | {row['positives']} / {row['negatives']} | "
                     f"{row['auc']:.3f} [{low:.3f}, {high:.3f}] | {row['brier']:.3f} | {row['brier_prevalence']:.3f} "
                     f"| {row['accuracy']:.3f} | {row['majority_accuracy']:.3f} |")
    paired = figures["paired_on_noted"]
    lines += ["", f"Paired on the {paired['images']} images ({paired['groups']} patients) that have a note:", "",
              "| input | AUC | minus image alone [95% CI] |", "|---|---|---|"]
    for inputs in INPUTS:
        gain = paired["minus_image_ci95"].get(inputs)
        difference = paired["auc"][inputs] - paired["auc"]["image"]
        lines.append(f"| {inputs} | {paired['auc'][inputs]:.3f} | "
                     + (f"{difference:+.3f} [{gain[0]:+.3f}, {gain[1]:+.3f}] |" if gain else "- |"))
    return "\n".join(lines) + "\n"
