"""Held-out evaluation of the fusion reranker and the ablation of its design rules (``medrag eval ablate``).

Every variant is trained on the same training split with the same seeds and scored on the same held-out
queries; "no fusion" is the retrieval order itself (RRF of the routed hybrid and joint searches).

Metrics, per task:
- rerank: hit@1 and hit@5 (the own abstract, or any candidate of the query's finding class, in the top
  1/5), MRR of the first relevant candidate, and for covid precision@5;
- sentence selection (PubMedQA): whether one of the 3 best-scored sentences is one that carries the
  authors' conclusion; without fusion the sentences are scored by cosine with the question;
- covid finding classification: class probabilities from the finding classes of the 10 best-ranked case
  candidates, weighted by 1/rank; accuracy and one-vs-rest macro AUC (scikit-learn).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from evaluation.outputs import pyplot, save_figure, write_json_and_markdown
from evaluation.retrieval import rank_metrics
from medrag.encode.pairs import FINDING_CLASSES
from medrag.fuse.data import FusionData, FusionItem
from medrag.fuse.losses import FusionLossConfig
from medrag.fuse.model import FusionConfig
from medrag.fuse.train import TrainOptions, fit, predict, ranked, split_items
from medrag.store import CASES

NO_FUSION = "no fusion (retrieval order)"
CASES_FIRST = "cases first (retrieval order within)"
"""A second baseline: the same candidates with every imaging case moved ahead of the reports. On covid
queries most cases share the majority finding, so this modality prior alone lifts precision."""
VARIANTS: dict[str, dict[str, dict[str, Any]]] = {
    "full": {},
    "no R1 modality bias": {"model": {"modality_bias": False}},
    "R2 mean pooling": {"model": {"pooling": "mean"}},
    "no R4 positions": {"model": {"positions": "none"}},
    "no R6 attention loss": {"loss": {"attention_weight": 0.0}},
    "no R7 dropout/smoothing": {"model": {"dropout": 0.0, "attention_dropout": 0.0}, "loss": {"label_smoothing": 0.0}},
    "no raw sentence similarity": {"model": {"sentence_similarity": False}},
}
"""Each variant changes the default configuration (``FusionConfig()``, ``FusionLossConfig()``) in one rule."""
SENTENCES_KEPT = 3
HEADLINE = ("pubmedqa/mrr", f"pubmedqa/sentence_hit@{SENTENCES_KEPT}", "covid/mrr", "covid/precision@5",
            "covid/finding_auc")
CASES_VOTING = 10

Prediction = tuple[np.ndarray, list[np.ndarray]]
"""Candidate scores (C,) and each candidate's sentence scores, as ``medrag.fuse.train.predict`` gives them."""


def retrieval_prediction(data: FusionData, item: FusionItem) -> Prediction:
    """The no-fusion baseline: retrieval order, sentences by cosine with the query's first text token."""
    scores = -np.arange(len(item.candidates), dtype=np.float32)
    query = item.text[0] if item.text is not None else None
    sentences = [data.sentence_vectors[(c.collection, c.source_id)].astype(np.float32) @ query if query is not None
                 else np.zeros(len(data.sentence_vectors[(c.collection, c.source_id)]), np.float32)
                 for c in item.candidates]
    return scores, sentences


def cases_first_prediction(data: FusionData, item: FusionItem) -> Prediction:
    """The retrieval baseline with imaging cases ahead of everything else (see ``CASES_FIRST``)."""
    scores, sentences = retrieval_prediction(data, item)
    return scores + 1000.0 * np.array([c.collection == CASES for c in item.candidates], np.float32), sentences


BASELINES = {NO_FUSION: retrieval_prediction, CASES_FIRST: cases_first_prediction}
TABLE_METRICS = ("hit@1", "hit@5", "precision@5", "mrr", f"sentence_hit@{SENTENCES_KEPT}", "finding_accuracy",
                 "finding_auc")
"""The columns of the Markdown table; the JSON also has MRR per finding class."""


def rerank_metrics(item: FusionItem, scores: np.ndarray) -> dict[str, float]:
    relevant = [candidate.relevant for candidate in ranked(item, scores)]
    metrics = rank_metrics(relevant, sum(relevant), ks=(1, 5))
    return {name: metrics[name] for name in ("hit@1", "hit@5", "precision@5", "mrr")}


def sentence_hit(item: FusionItem, sentence_scores: Sequence[np.ndarray]) -> float | None:
    """1 if one of the best ``SENTENCES_KEPT`` sentences (over all candidates) is relevant; None if unlabelled."""
    labelled = {(c, s) for c, candidate in enumerate(item.candidates) for s in candidate.relevant_sentences}
    if not labelled:
        return None
    flat = [(score, c, s) for c, scores in enumerate(sentence_scores) for s, score in enumerate(scores)]
    best = sorted(flat, key=lambda entry: -entry[0])[:SENTENCES_KEPT]
    return float(any((c, s) in labelled for _, c, s in best))


def finding_probabilities(item: FusionItem, scores: np.ndarray) -> np.ndarray:
    """Probabilities over ``FINDING_CLASSES`` from the best-ranked labelled cases, each weighted by 1/rank."""
    votes = np.full(len(FINDING_CLASSES), 1e-6)
    cases = [candidate for candidate in ranked(item, scores) if candidate.label in FINDING_CLASSES][:CASES_VOTING]
    for rank, candidate in enumerate(cases, 1):
        votes[FINDING_CLASSES.index(candidate.label)] += 1.0 / rank
    return votes / votes.sum()


def _mean(rows: Sequence[Mapping[str, float]]) -> dict[str, float]:
    return {key: float(np.mean([row[key] for row in rows])) for key in rows[0]} if rows else {}


def evaluate(items: Sequence[FusionItem], predictions: Sequence[Prediction]) -> dict[str, dict[str, float]]:
    """Mean metrics per task on ``items`` (see the module docstring)."""
    report: dict[str, dict[str, float]] = {}
    for task in sorted({item.task for item in items}):
        chosen = [(item, prediction) for item, prediction in zip(items, predictions, strict=True)
                  if item.task == task]
        metrics = _mean([rerank_metrics(item, scores) for item, (scores, _) in chosen])
        hits = [hit for item, (_, sentences) in chosen if (hit := sentence_hit(item, sentences)) is not None]
        if hits and task == "pubmedqa":
            metrics[f"sentence_hit@{SENTENCES_KEPT}"] = float(np.mean(hits))
        labelled = [(item, scores) for item, (scores, _) in chosen if item.label in FINDING_CLASSES]
        for name in FINDING_CLASSES:
            of_class = [rerank_metrics(item, scores)["mrr"] for item, scores in labelled if item.label == name]
            if of_class:
                metrics[f"mrr[{name}]"] = float(np.mean(of_class))
        if labelled:
            truth = np.array([FINDING_CLASSES.index(item.label) for item, _ in labelled])
            probabilities = np.stack([finding_probabilities(item, scores) for item, scores in labelled])
            metrics["finding_accuracy"] = float(np.mean(probabilities.argmax(1) == truth))
            if len(set(truth)) == len(FINDING_CLASSES):
                metrics["finding_auc"] = float(roc_auc_score(truth, probabilities, multi_class="ovr",
                                                             labels=list(range(len(FINDING_CLASSES)))))
        report[task] = {"queries": float(len(chosen)), **metrics}
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


def ablate(data: FusionData, *, variants: Mapping[str, Mapping[str, Any]] = VARIANTS,
           seeds: Sequence[int] = (0, 1, 2), options: TrainOptions | None = None,
           progress: bool = True) -> dict[str, Any]:
    """Train every variant with every seed on the training split; score all on the held-out split."""
    options = options or TrainOptions()
    train, validation, test = split_items(data, options)
    baselines = {name: evaluate(test, [predict_baseline(data, item) for item in test])
                 for name, predict_baseline in BASELINES.items()}
    results: dict[str, Any] = {name: {task: {metric: {"mean": value, "std": 0.0}
                                             for metric, value in metrics.items() if metric != "queries"}
                                      for task, metrics in baseline.items()}
                               for name, baseline in baselines.items()}
    runs_info: dict[str, list[dict[str, Any]]] = {}
    for name, changes in variants.items():
        config, loss_config = variant_configs(changes)
        runs, info = [], []
        for seed in seeds:
            fitted = fit(data, train, validation, config, loss_config, dataclasses.replace(options, seed=seed),
                         progress=progress)
            runs.append(evaluate(test, predict(fitted.model, data, test)))
            info.append({"seed": seed, "best_epoch": fitted.best_epoch, "seconds": fitted.seconds})
        results[name] = _spread(runs)
        runs_info[name] = info
    return {"split": {"train": len(train), "validation": len(validation), "test": len(test),
                      "test_queries": {task: int(m["queries"]) for task, m in baselines[NO_FUSION].items()}},
            "seeds": list(seeds), "options": dataclasses.asdict(options),
            "variants": {name: changes for name, changes in variants.items()},
            "results": results, "runs": runs_info}


def _cell(value: Mapping[str, float] | None) -> str:
    return "n/a" if value is None else f"{value['mean']:.3f} ± {value['std']:.3f}"


def render_markdown(report: Mapping[str, Any]) -> str:
    results = report["results"]
    columns = [(task, metric) for task in sorted(results[NO_FUSION]) for metric in TABLE_METRICS
               if metric in results[NO_FUSION][task]]
    lines = ["# Fusion ablation (held-out queries)", "",
             f"Split by query group: {report['split']}. Seeds {report['seeds']}; mean ± std over seeds.", "",
             "| variant | " + " | ".join(f"{task} {metric}" for task, metric in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for name, metrics in results.items():
        lines.append(f"| {name} | " + " | ".join(_cell(metrics.get(task, {}).get(metric)) for task, metric in columns)
                     + " |")
    return "\n".join(lines) + "\n"


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
