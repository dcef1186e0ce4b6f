"""Held-out evaluation of the fusion reranker and the ablation of its design rules (``medrag eval ablate``).

Every variant is trained on the same training part with the same seeds and scored on the same held-out
queries; "no fusion" is the retrieval order itself (RRF of the routed hybrid and joint searches). The split
is the one named in the fusion checkpoint's card, so the held-out covid patients are those that neither the
shipped fusion module nor the joint model (same split name) trained on. The gain of the full model over the
retrieval order comes with a paired bootstrap interval over the held-out queries.

The metrics per task are those of ``training.fusion_metrics`` (the fusion card's test figures use them too).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medrag.datasets.splits import Split, card_split
from medrag.fuse.checkpoint import CHECKPOINT_CONFIG, load_checkpoint
from medrag.fuse.model import FusionConfig
from medrag.metrics import bootstrap_interval
from medrag.reporting import pyplot, save_figure, write_json_and_markdown
from training.fusion import TrainOptions, fit, predict, split_items
from training.fusion_data import FusionData, FusionItem
from training.fusion_losses import FusionLossConfig
from training.fusion_metrics import (
    BASELINES,
    NO_FUSION,
    SENTENCES_KEPT,
    TABLE_METRICS,
    Prediction,
    evaluate,
    rerank_metrics,
)

FULL = "full"
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    FULL: {},
    "no R1 modality bias": {"model": {"modality_bias": False}},
    "R2 mean pooling": {"model": {"pooling": "mean"}},
    "no R4 positions": {"model": {"positions": "none"}},
    "no R6 attention loss": {"loss": {"attention_weight": 0.0}},
    "no R7 dropout/smoothing": {"model": {"dropout": 0.0, "attention_dropout": 0.0}, "loss": {"label_smoothing": 0.0}},
    "no raw sentence similarity": {"model": {"sentence_similarity": False}},
}
"""Each variant changes the default configuration (``FusionConfig()``, ``FusionLossConfig()``) in one rule."""
HEADLINE = ("pubmedqa/mrr", f"pubmedqa/sentence_hit@{SENTENCES_KEPT}", "covid/mrr", "covid/precision@5",
            "covid/finding_auc")
GAIN_METRICS = ("hit@1", "mrr", "precision@5")
"""Rerank metrics of the paired full-vs-retrieval-order comparison."""


def checkpoint_split(folder: Path) -> tuple[Split, dict[str, Any]]:
    """The split named in a fusion checkpoint's card, and that card."""
    _, card = load_checkpoint(folder)
    return card_split(card, str(folder / CHECKPOINT_CONFIG)), card


def _per_query(items: Sequence[FusionItem], predictions: Sequence[Prediction]) -> dict[str, dict[str, np.ndarray]]:
    """Per task and metric of ``GAIN_METRICS``: each item's value, in item order within the task."""
    rows: dict[str, list[dict[str, float]]] = {}
    for item, (scores, _) in zip(items, predictions, strict=True):
        rows.setdefault(item.task, []).append(rerank_metrics(item, scores))
    return {task: {metric: np.array([row[metric] for row in task_rows]) for metric in GAIN_METRICS}
            for task, task_rows in rows.items()}


def fusion_gain(items: Sequence[FusionItem], baseline: Sequence[Prediction],
                runs: Sequence[Sequence[Prediction]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Full model (per query, the mean over seeds) against the retrieval order on the same held-out queries:
    means, 95% bootstrap intervals, and the paired interval of the gain."""
    base = _per_query(items, baseline)
    fused = [_per_query(items, predictions) for predictions in runs]
    report: dict[str, dict[str, dict[str, Any]]] = {}
    for task, metrics in base.items():
        report[task] = {}
        for metric, before in metrics.items():
            after = np.mean([run[task][metric] for run in fused], axis=0)
            report[task][metric] = {
                "queries": len(before), NO_FUSION: float(before.mean()), FULL: float(after.mean()),
                f"{NO_FUSION} ci95": bootstrap_interval(before), f"{FULL} ci95": bootstrap_interval(after),
                "gain": float((after - before).mean()), "gain ci95": bootstrap_interval(after - before)}
    return report


def variant_configs(changes: Mapping[str, Mapping[str, Any]]) -> tuple[FusionConfig, FusionLossConfig]:
    return (dataclasses.replace(FusionConfig(), **changes.get("model", {})),
            dataclasses.replace(FusionLossConfig(), **changes.get("loss", {})))


def _spread(runs: Sequence[Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and standard deviation over seeds of every metric."""
    return {task: {metric: {"mean": float(np.mean([run[task][metric] for run in runs])),
                            "std": float(np.std([run[task][metric] for run in runs]))}
                   for metric in runs[0][task] if metric != "queries"}
            for task in runs[0]}


def ablate(data: FusionData, checkpoint: Path, *, variants: Mapping[str, Mapping[str, Any]] = VARIANTS,
           seeds: Sequence[int] = (0, 1, 2), options: TrainOptions | None = None,
           progress: bool = True) -> dict[str, Any]:
    """Train every variant with every seed on the training part of the split named in ``checkpoint``'s card;
    score all on its test part."""
    split, card = checkpoint_split(checkpoint)
    options = dataclasses.replace(options or TrainOptions(), split=split)
    train, validation, test = split_items(data, options)
    baseline_predictions = {name: [predict_baseline(data, item) for item in test]
                            for name, predict_baseline in BASELINES.items()}
    baselines = {name: evaluate(test, predictions) for name, predictions in baseline_predictions.items()}
    results: dict[str, Any] = {name: {task: {metric: {"mean": value, "std": 0.0}
                                             for metric, value in metrics.items() if metric != "queries"}
                                      for task, metrics in baseline.items()}
                               for name, baseline in baselines.items()}
    runs_info: dict[str, list[dict[str, Any]]] = {}
    full_predictions: list[list[Prediction]] = []
    for name, changes in variants.items():
        config, loss_config = variant_configs(changes)
        runs, info = [], []
        for seed in seeds:
            fitted = fit(data, train, validation, config, loss_config, dataclasses.replace(options, seed=seed),
                         progress=progress)
            predictions = predict(fitted.model, data, test)
            runs.append(evaluate(test, predictions))
            info.append({"seed": seed, "best_epoch": fitted.best_epoch, "seconds": fitted.seconds})
            if name == FULL:
                full_predictions.append(predictions)
        results[name] = _spread(runs)
        runs_info[name] = info
    described = split.describe(data.items)
    return {"split": {**described, "checkpoint": str(checkpoint),
                      "same_test_part_as_checkpoint": described["parts"]["test"] == card["split"]["parts"]["test"],
                      "test_queries": {task: int(m["queries"]) for task, m in baselines[NO_FUSION].items()}},
            "seeds": list(seeds), "options": dataclasses.asdict(options),
            "variants": {name: changes for name, changes in variants.items()},
            "results": results, "runs": runs_info,
            "fusion_gain": fusion_gain(test, baseline_predictions[NO_FUSION], full_predictions)
            if full_predictions else {}}


def _cell(value: Mapping[str, float] | None) -> str:
    return "n/a" if value is None else f"{value['mean']:.3f} ± {value['std']:.3f}"


def render_markdown(report: Mapping[str, Any]) -> str:
    results = report["results"]
    columns = [(task, metric) for task in sorted(results[NO_FUSION]) for metric in TABLE_METRICS
               if metric in results[NO_FUSION][task]]
    split = report["split"]
    parts = ", ".join(f"{name} {part['items']} queries ({part['groups']} groups)"
                      for name, part in split["parts"].items())
    lines = ["# Fusion ablation (held-out queries)", "",
             f"Split {split['name']} (from the card of `{split['checkpoint']}`; same test part as that checkpoint: "
             f"{'yes' if split['same_test_part_as_checkpoint'] else 'no'}): {parts}. Seeds {report['seeds']}; "
             "mean ± std over seeds.", "",
             "| variant | " + " | ".join(f"{task} {metric}" for task, metric in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for name, metrics in results.items():
        lines.append(f"| {name} | " + " | ".join(_cell(metrics.get(task, {}).get(metric)) for task, metric in columns)
                     + " |")
    return "\n".join(lines + _gain_markdown(report.get("fusion_gain", {}))
                     + _joint_markdown(report.get("joint_model_regularisers"))) + "\n"


def _joint_markdown(joint: Mapping[str, Any] | None) -> list[str]:
    """The joint model's regularisers as its training recorded them (``medrag eval all`` adds them)."""
    if not joint:
        return []
    return ["", f"Joint model regularisers, recorded {joint['measured']} (`{joint['source']}`):", "",
            "| option | mean | std | per seed |", "|---|---|---|---|",
            *(f"| {name} | {row['mean']:.3f} | {row['std']:.3f} | {', '.join(f'{v:.3f}' for v in row['scores'])} |"
              for name, row in joint["results"].items())]


def _gain_markdown(gain: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> list[str]:
    if not gain:
        return []
    lines = ["", f"Gain of {FULL} (per query, mean over seeds) over {NO_FUSION}, with 95% bootstrap intervals "
             "(paired for the gain):", "", "| task | metric | queries | no fusion | full | gain |",
             "|---|---|---|---|---|---|"]
    for task, metrics in sorted(gain.items()):
        for metric, row in metrics.items():
            cells = [f"{row[key]:.3f} [{row[key + ' ci95'][0]:.3f}, {row[key + ' ci95'][1]:.3f}]"
                     for key in (NO_FUSION, FULL, "gain")]
            lines.append(f"| {task} | {metric} | {row['queries']} | " + " | ".join(cells) + " |")
    return lines


def plot_ablation(report: Mapping[str, Any], path: Path, metrics: Sequence[str] = HEADLINE) -> Path:
    """One group of bars per headline metric, one bar per variant, error bars = std over seeds."""
    results = report["results"]
    names = list(results)
    shown = [metric for metric in metrics if metric.split("/")[1] in results[NO_FUSION].get(metric.split("/")[0], {})]
    figure, axis = pyplot().subplots(figsize=(2.6 * len(shown) + 2, 4.5))
    width = 0.8 / len(names)
    for index, name in enumerate(names):
        cells = [results[name][metric.split("/")[0]][metric.split("/")[1]] for metric in shown]
        axis.bar(np.arange(len(shown)) + index * width, [cell["mean"] for cell in cells], width,
                 yerr=[cell["std"] for cell in cells], label=name, capsize=2)
    axis.set_xticks(np.arange(len(shown)) + 0.4 - width / 2, shown)
    axis.set(ylabel="held-out score", title="fusion ablation (mean ± std over seeds)")
    axis.legend(fontsize=7, loc="lower right")
    return save_figure(figure, path)


def write_ablation(report: Mapping[str, Any], out_dir: Path) -> list[Path]:
    return [*write_json_and_markdown(report, render_markdown(report), out_dir, "ablation"),
            plot_ablation(report, out_dir / "ablation.png")]
