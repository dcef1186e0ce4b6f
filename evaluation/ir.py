"""Paired comparison of retrieval methods on the same queries, through ranx.

Every retrieval table in the suite puts methods side by side on the same queries; a difference between two of
them means something only with a paired test. ranx gives the metrics (recall@k, MRR, nDCG) and Fisher's
randomisation test; medrag adds a percentile-bootstrap interval around each mean
(``medrag.metrics.bootstrap_interval``) so a reader sees how wide each figure is, not only which differ.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Collection, Hashable, Mapping, Sequence
from typing import Any

from medrag.metrics import bootstrap_interval

RANX_METRICS = ("recall@1", "recall@5", "recall@10", "mrr@10", "ndcg@10")
"""ranx's names; reported as medrag's (``mrr@10`` -> ``mrr``: every ranking here is cut at 10)."""
PERMUTATIONS = 1000
MAX_P = 0.05


def report_name(metric: str) -> str:
    return "mrr" if metric.startswith("mrr") else metric


def _ranx() -> Any:
    # ranx compiles its metrics with numba on first use (cached after); numba's logging and its cast warnings
    # from inside ranx's kernels tell a user of the suite nothing they can act on.
    logging.getLogger("numba").setLevel(logging.WARNING)
    from numba.core.errors import NumbaTypeSafetyWarning

    warnings.filterwarnings("ignore", category=NumbaTypeSafetyWarning)
    import ranx

    return ranx


def _key(item: Hashable) -> str:
    return item if isinstance(item, str) else "/".join(map(str, item)) if isinstance(item, tuple) else str(item)


def compare_rankings(rankings: Mapping[str, Mapping[str, Sequence[Hashable]]],
                     relevant: Mapping[str, Collection[Hashable]], *, metrics: Sequence[str] = RANX_METRICS,
                     permutations: int = PERMUTATIONS, max_p: float = MAX_P, seed: int = 0) -> dict[str, Any]:
    """Per method: each metric's mean over the queries with its 95% bootstrap interval; per pair of methods:
    the p-value of Fisher's randomisation test per metric.

    ``rankings[method][query]`` is that method's ranking for the query (best first; a repeated item counts
    once), ``relevant[query]`` the relevant items. Every method is scored on every query of ``relevant``: a
    query a method returned nothing for scores 0.
    """
    ranx = _ranx()
    qrels = ranx.Qrels({query: {_key(item): 1 for item in items} for query, items in relevant.items() if items})
    runs = []
    for method, by_query in rankings.items():
        scored = {}
        for query in relevant:
            unique = list(dict.fromkeys(_key(item) for item in by_query.get(query, ())))
            # ranx ranks by score: the reciprocal rank keeps the method's order.
            scored[query] = {item: 1.0 / rank for rank, item in enumerate(unique, 1)} or {"<none>": 0.0}
        runs.append(ranx.Run(scored, name=method))
    per_query = {run.name: {metric: ranx.evaluate(qrels, run, metric, return_mean=False, make_comparable=True)
                            for metric in metrics} for run in runs}
    methods = {name: {report_name(metric): {"mean": float(values.mean()),
                                            "interval": bootstrap_interval(values.tolist(), seed=seed)}
                      for metric, values in scores.items()} for name, scores in per_query.items()}
    significance: dict[str, dict[str, dict[str, float]]] = {}
    if len(runs) > 1:
        compared = ranx.compare(qrels, runs, list(metrics), stat_test="fisher", n_permutations=permutations,
                                max_p=max_p, random_seed=seed, make_comparable=True).to_dict()
        significance = {name: {other: {report_name(metric): float(p) for metric, p in by_metric.items()}
                               for other, by_metric in compared[name]["comparisons"].items()}
                        for name in compared["model_names"]}
    return {"queries": len(qrels.qrels), "metrics": [report_name(metric) for metric in metrics],
            "methods": methods, "test": "Fisher's randomisation test (ranx), two-sided, paired by query",
            "permutations": permutations, "max_p": max_p, "p_values": significance}


def significance_lines(comparison: Mapping[str, Any], metric: str = "mrr") -> list[str]:
    """A Markdown table: each method's mean and interval for ``metric`` and its p-value against every other."""
    names = list(comparison["methods"])
    header = ["method", f"{metric} [95% CI]", *(f"p vs {name}" for name in names)]
    rows = []
    for name in names:
        score = comparison["methods"][name][metric]
        low, high = score["interval"]
        p_values = comparison["p_values"].get(name, {})
        rows.append([name, f"{score['mean']:.3f} [{low:.3f}, {high:.3f}]",
                     *("-" if other == name else f"{p_values[other][metric]:.3f}" for other in names)])
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    return [*lines, *("| " + " | ".join(row) + " |" for row in rows)]
