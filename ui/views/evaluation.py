"""Evaluation: the latest evaluation and ablation reports (``medrag eval ...`` writes them) with their plots, and
the model cards of the models in use."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

import evaluation
import medrag
from ui.resources import config

MODEL_CARDS = Path(medrag.__file__).parent
"""Model cards lie beside the committed weights (``*/weights/<model>/MODEL_CARD.md``)."""


def results_dir() -> Path:
    return config().ui.results_dir or Path(evaluation.__file__).parent / "results"


def reports(folder: Path) -> list[Path]:
    """Every Markdown report under ``folder``, newest first."""
    return sorted(folder.rglob("*.md"), key=lambda path: path.stat().st_mtime, reverse=True)


def render() -> None:
    st.title("Evaluation")
    folder = results_dir()
    found = reports(folder) if folder.is_dir() else []
    if not found:
        st.info(f"No evaluation reports in {folder}. Run `medrag eval ...` (README: Evaluation) or set "
                "`[ui] results_dir`.")
    for path in found:
        _report(path, folder)
    st.header("Model cards")
    for card in sorted(MODEL_CARDS.glob("*/weights/*/MODEL_CARD.md")):
        _report(card, MODEL_CARDS)


def _report(path: Path, root: Path) -> None:
    """Our own Markdown files (trusted text: no user or retrieved text), their PNG plots below."""
    with st.expander(str(path.relative_to(root)), expanded=False):
        st.markdown(path.read_text(encoding="utf-8"))
        for plot in sorted(path.parent.glob("*.png")):
            st.image(str(plot), caption=plot.name)

