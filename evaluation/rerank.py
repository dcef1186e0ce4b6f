"""The rerankers side by side on the same questions: ``medrag eval rerank QUESTIONS.json``.

Each question of a PubMedQA-format file is searched once per reranker through the real Assistant (router,
Weaviate hybrid search, the reranker), and the place of its own abstract among the first ``k`` is scored
(hit@1, MRR; ``medrag.metrics.id_metrics``) with 95% bootstrap intervals, the paired difference of each
reranker against the fusion module, and the rerank stage's milliseconds per question. By default only the
questions in the test part of the fusion checkpoint's split are used: neither the fusion module nor the decider
trained on them. The retrieval order is the baseline every reranker starts from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from evaluation.fusion import checkpoint_split
from medrag.assistant import Assistant
from medrag.config import Config
from medrag.datasets.pubmedqa import read_pubmedqa
from medrag.datasets.splits import DEFAULT_SPLIT, Split
from medrag.fuse.checkpoint import DEFAULT_CHECKPOINT
from medrag.metrics import bootstrap_interval, id_metrics
from medrag.reporting import pyplot, save_figure, write_json_and_markdown

REFERENCE = "fusion"
METRICS = ("hit@1", "mrr")


def fusion_split(config: Config) -> Split:
    """The split the fusion checkpoint's card names (the shared default when no checkpoint was trained)."""
    try:
        return checkpoint_split(Path(config.fusion_model or DEFAULT_CHECKPOINT))[0]
    except FileNotFoundError:
        return DEFAULT_SPLIT


def evaluate_rerankers(assistants: Mapping[str, Assistant], questions_path: Path, *, tenant: str, k: int = 10,
                       held_out_only: bool = True, count: int | None = None, out_dir: Path | None = None,
                       progress: bool = True) -> dict[str, Any]:
    """``assistants``: one Assistant per reranker name, over the same store and models."""
    config = next(iter(assistants.values())).config
    split = fusion_split(config)
    records = read_pubmedqa(questions_path)
    if held_out_only:
        records = [record for record in records if split.part(record.group) == "test"]
    records = records[:count] if count else records
    if not records:
        raise ValueError(f"{questions_path}: no question to evaluate (held out only: {held_out_only}, split "
                         f"{split.name}); run with --all or another file")
    per_query: dict[str, list[dict[str, float]]] = {name: [] for name in assistants}
    milliseconds: dict[str, list[float]] = {name: [] for name in assistants}
    for record in tqdm(records, desc="questions", unit="question", disable=not progress):
        for name, assistant in assistants.items():
            result = assistant.search(question=record.question, tenant=tenant, k=k)
            ranked = [item.source_id for item in result.evidence]
            per_query[name].append(id_metrics(ranked, {record.pmid}, (1, k)))
            milliseconds[name].append(result.timings_ms.get("fuse", 0.0))
    rerankers: dict[str, Any] = {}
    for name, rows in per_query.items():
        summary: dict[str, Any] = {"reranker": assistants[name].reranker.name}
        for metric in METRICS:
            values = np.array([row[metric] for row in rows])
            summary[metric] = float(values.mean())
            summary[f"{metric}_ci95"] = bootstrap_interval(values)
            if name != REFERENCE and REFERENCE in per_query:
                reference = np.array([row[metric] for row in per_query[REFERENCE]])
                summary[f"{metric}_minus_{REFERENCE}_ci95"] = bootstrap_interval(values - reference)
        summary["rerank_ms_p50"] = float(np.percentile(milliseconds[name], 50))
        summary["rerank_ms_p95"] = float(np.percentile(milliseconds[name], 95))
        rerankers[name] = summary
    report = {"questions": str(questions_path),
              "questions_sha256": hashlib.sha256(questions_path.read_bytes()).hexdigest(),
              "count": len(records), "held_out_only": held_out_only, "split": split.name, "k": k, "tenant": tenant,
              "reader_rerank_top": config.reader_rerank_top, "rerankers": rerankers}
    if out_dir:
        write_json_and_markdown(report, render_markdown(report), out_dir, "rerank")
        plot_rerankers(report, out_dir / "rerank.png")
    return report


def render_markdown(report: Mapping[str, Any]) -> str:
    scope = f"the test part of split {report['split']}" if report["held_out_only"] else "every question"
    lines = [f"# Rerankers on {Path(report['questions']).name}: {report['count']} questions ({scope})", "",
             f"Own abstract among the first {report['k']}; the reader rerankers read the first "
             f"{report['reader_rerank_top']} candidates. 95% bootstrap intervals; differences are paired, against "
             f"the {REFERENCE} module.", "",
             "| reranker | hit@1 | MRR | MRR minus fusion | rerank ms p50 / p95 |", "|---|---|---|---|---|"]
    for name, row in report["rerankers"].items():
        low, high = row["mrr_ci95"]
        hit_low, hit_high = row["hit@1_ci95"]
        gain = row.get(f"mrr_minus_{REFERENCE}_ci95")
        lines.append(f"| {name} | {row['hit@1']:.3f} [{hit_low:.3f}, {hit_high:.3f}] | {row['mrr']:.3f} "
                     f"[{low:.3f}, {high:.3f}] | {f'[{gain[0]:+.3f}, {gain[1]:+.3f}]' if gain else '-'} | "
                     f"{row['rerank_ms_p50']:.0f} / {row['rerank_ms_p95']:.0f} |")
    return "\n".join(lines) + "\n"


def plot_rerankers(report: Mapping[str, Any], path: Path) -> Path:
    """MRR with its interval against the rerank stage's median milliseconds, one point per reranker."""
    figure, axis = pyplot().subplots(figsize=(6, 4))
    for name, row in report["rerankers"].items():
        low, high = row["mrr_ci95"]
        axis.errorbar([max(row["rerank_ms_p50"], 0.1)], [row["mrr"]], yerr=[[row["mrr"] - low], [high - row["mrr"]]],
                      fmt="o", capsize=3, label=name)
    axis.set(xscale="log", xlabel="rerank stage, ms per question (p50, log scale)", ylabel="MRR of the own abstract",
             title=f"Rerankers on {report['count']} questions")
    axis.legend(fontsize=8)
    return save_figure(figure, path)


def rerank_assistants(config: Config, names: Sequence[str]) -> dict[str, Assistant]:
    """One Assistant per reranker over one store and one text encoder (the reader is shared by medrag.lm)."""
    first = Assistant.local(config.replace(reranker=names[0]))
    shared = {"text_encoder": first.text_encoder}
    return {names[0]: first, **{name: Assistant(config.replace(reranker=name), first.store, **shared)
                                for name in names[1:]}}
