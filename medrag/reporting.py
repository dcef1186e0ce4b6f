"""Where results go: PNG figures and the JSON + Markdown pair every evaluation writes.

One place for the matplotlib set-up (the non-interactive Agg backend, imported on first use so that
commands without plots never load it) and for how figures and reports are written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import ConfusionMatrixDisplay


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend: files only, no display needed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: Path) -> Path:
    """Lay out, write as a 120-dpi PNG (creating the folder) and free the figure."""
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    pyplot().close(figure)
    return path


def strict_json(value: Any) -> Any:
    """``value`` with every NaN or infinite float (an interval over no items, an undefined ratio) as None: Python
    writes them as ``NaN``, which strict JSON readers (jq, browsers, pandas' default) refuse."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, Mapping):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(item) for item in value]
    return value


def write_json_and_markdown(report: Mapping[str, Any], markdown: str, out_dir: Path, stem: str) -> list[Path]:
    """``<stem>.json`` (strict JSON: no NaN) and ``<stem>.md`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, markdown_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(strict_json(report), indent=2, allow_nan=False) + "\n")
    markdown_path.write_text(markdown)
    return [json_path, markdown_path]


def save_confusion_matrix(metrics: dict[str, Any], path: Path, title: str) -> Path:
    display = ConfusionMatrixDisplay(np.array(metrics["confusion_matrix"]), display_labels=metrics["intents"])
    display.plot(cmap="Blues", colorbar=False)
    display.ax_.set_title(f"{title}\naccuracy {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}")
    return save_figure(display.figure_, path)


def save_reliability_diagram(confidence: Any, correct: Any, path: Path, title: str, bins: int = 10) -> Path:
    """Accuracy against confidence in equal-width bins (bar width shows the bin), with the diagonal of perfect
    calibration and the number of predictions per bin."""
    confidence, correct = np.asarray(confidence, dtype=float), np.asarray(correct, dtype=float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    figure, axis = pyplot().subplots(figsize=(5, 5))
    axis.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    for b in range(bins):
        if np.any(which == b):
            accuracy = correct[which == b].mean()
            axis.bar(edges[b], accuracy, width=1 / bins, align="edge", color="tab:blue", edgecolor="white", alpha=0.8)
            axis.text(edges[b] + 0.5 / bins, accuracy + 0.01, str(int(np.sum(which == b))), ha="center", fontsize=7)
    axis.set(xlim=(0, 1), ylim=(0, 1.05), xlabel="confidence of the decided label", ylabel="accuracy", title=title)
    axis.legend(loc="upper left")
    return save_figure(figure, path)
