"""Latency of the product's own path, per stage and end to end, inside ``medrag eval all``.

Each request is one ``Assistant.ask`` (extractive answer) on its own, the way a clinician's question arrives:
text-only questions, and clinical notes with their radiograph. The stage timings are the ones every answer carries
(``Answer.timings_ms``), so a figure here is what a user's ``medrag ask --json`` reports. p50/p95/p99 come with a
95% bootstrap interval (scipy) because a few dozen requests leave the tail percentiles wide. The Assistant is warm
here (earlier suites loaded every model); cold start and the concurrency figures are in ``benchmarks/``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import bootstrap
from tqdm import tqdm

from medrag.assistant import Assistant
from medrag.reporting import pyplot, save_figure, write_json_and_markdown

PERCENTILES = (50, 95, 99)
END_TO_END = "end to end"


def percentile_summary(values: Sequence[float], *, seed: int = 0) -> dict[str, Any]:
    """p50/p95/p99 of ``values`` (ms), each with its 95% percentile-bootstrap interval."""
    array = np.asarray(values, dtype=float)
    summary: dict[str, Any] = {"count": len(array)}
    for q in PERCENTILES:
        value = float(np.percentile(array, q))
        interval = [value, value]
        if len(array) > 1 and np.ptp(array) > 0:
            result = bootstrap((array,), lambda sample, axis, q=q: np.percentile(sample, q, axis=axis),
                               n_resamples=1000, method="percentile", random_state=seed)
            interval = [float(result.confidence_interval.low), float(result.confidence_interval.high)]
        summary[f"p{q}_ms"] = {"value": round(value, 2), "ci95": [round(bound, 2) for bound in interval]}
    return summary


def _timed(assistant: Assistant, requests: Sequence[dict[str, Any]], tenant: str, desc: str,
           progress: bool) -> dict[str, list[float]]:
    """Stage and end-to-end milliseconds of each request, asked one at a time."""
    timings: dict[str, list[float]] = {}
    for request in tqdm(requests, desc=desc, unit="q", disable=not progress):
        started = time.perf_counter()
        answer = assistant.ask(**request, tenant=tenant, mode="extractive")
        timings.setdefault(END_TO_END, []).append((time.perf_counter() - started) * 1000)
        for stage, ms in answer.timings_ms.items():
            timings.setdefault(stage, []).append(ms)
    return timings


def evaluate_latency(assistant: Assistant, questions: Sequence[str], cases: Sequence[tuple[str, Path]], *,
                     tenant: str, out_dir: Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Per-stage and end-to-end p50/p95/p99 of extractive answers: ``questions`` alone, and ``cases`` (clinical
    note, radiograph path) asked with their image."""
    kinds = {"text question": [{"question": question} for question in questions],
             "note + image": [{"note": note, "image": str(image)} for note, image in cases]}
    report: dict[str, Any] = {"tenant": tenant, "mode": "extractive", "kinds": {}}
    samples = {}
    for kind, requests in kinds.items():
        if not requests:
            continue
        samples[kind] = _timed(assistant, requests, tenant, f"latency, {kind}", progress)
        report["kinds"][kind] = {stage: percentile_summary(values) for stage, values in samples[kind].items()}
    if out_dir is not None:
        write_json_and_markdown(report, render_markdown(report), out_dir, "latency")
        plot_latency(samples, out_dir / "latency.png")
    return report


def plot_latency(samples: dict[str, dict[str, list[float]]], path: Path) -> Path:
    """A histogram of end-to-end milliseconds per kind of request, p95 marked."""
    figure, axes = pyplot().subplots(1, max(len(samples), 1), figsize=(5 * max(len(samples), 1), 3.5), squeeze=False)
    for axis, (kind, timings) in zip(axes[0], samples.items(), strict=False):
        values = timings[END_TO_END]
        axis.hist(values, bins=20, color="tab:blue", alpha=0.8)
        axis.axvline(float(np.percentile(values, 95)), color="tab:red", linestyle="--", label="p95")
        axis.set(xlabel="end-to-end ms (extractive)", ylabel="requests", title=f"{kind} ({len(values)})")
        axis.legend()
    return save_figure(figure, path)


def render_markdown(report: dict[str, Any]) -> str:
    lines = [f"# Latency ({report['mode']} answers, one request at a time, warm)", ""]
    for kind, stages in report["kinds"].items():
        lines += [f"## {kind} ({stages[END_TO_END]['count']} requests)", "",
                  "| stage | p50 ms [95% CI] | p95 ms [95% CI] | p99 ms [95% CI] |", "|---|---|---|---|"]
        for stage, summary in stages.items():
            cells = [f"{summary[f'p{q}_ms']['value']:.1f} [{summary[f'p{q}_ms']['ci95'][0]:.1f}, "
                     f"{summary[f'p{q}_ms']['ci95'][1]:.1f}]" for q in PERCENTILES]
            lines.append(f"| {stage} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
