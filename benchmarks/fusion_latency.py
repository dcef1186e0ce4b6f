"""Fusion latency per query on this machine: warm p50/p95 of the module's forward pass, written as JSON.

One query: a 7x7 EfficientNet-Lite0 feature map (1280 channels), 2 text tokens and 50 candidates of 10
sentences (384-d MiniLM-sized vectors), default ``FusionConfig``, eval mode under ``torch.inference_mode``.
The latency does not depend on the weights or the values, so both are random (seeded).

Baseline, measured in the same run: a cosine rerank without fusion, the query text vector times all
evidence vectors and the best sentence per candidate. The ratio ``fusion p50 / baseline p50`` is what the
fusion costs on top of the cheapest rerank; it is comparable across machines. The brief's target is a
p50 under 30 ms on 2 cores; collate (python lists -> padded tensors) is timed separately.

Each thread count in ``--threads`` is timed in turn (the first is the headline). On a 2-core machine
that other processes share, OpenMP's spin-waiting makes 2 intra-op threads far slower than 1 (and slows
the python code around them); ``OMP_WAIT_POLICY=PASSIVE`` in the environment avoids it. The JSON keeps
the load average at the start and that setting.

    python benchmarks/fusion_latency.py --out benchmarks/results/fusion_latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from medrag.fuse import CrossAttentionFusion, FusionConfig, FusionExample, collate


def _percentiles(run: Callable[[], object], warmup: int, repeats: int) -> dict[str, float]:
    """Warm p50/p95/mean of ``run`` in milliseconds."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return {"p50_ms": round(float(np.percentile(times, 50)), 3), "p95_ms": round(float(np.percentile(times, 95)), 3),
            "mean_ms": round(float(np.mean(times)), 3)}


def _query(config: FusionConfig, candidates: int, sentences: int, text_tokens: int) -> FusionExample:
    rng = np.random.default_rng(0)

    def unit(*shape: int) -> np.ndarray:
        vectors = rng.normal(size=shape).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)

    modalities = config.evidence_modalities
    return FusionExample(
        candidates=[[(vector, modalities[c % len(modalities)]) for vector in unit(sentences, config.evidence_dim)]
                    for c in range(candidates)],
        text=unit(text_tokens, config.text_dim),
        image=np.abs(rng.normal(size=(config.image_dim, *config.grid))).astype(np.float32),
    )


def _cosine_rerank(text: torch.Tensor, evidence: torch.Tensor, candidate: torch.Tensor, count: int) -> torch.Tensor:
    """No fusion: mean query vector against every sentence, each candidate scored by its best sentence."""
    similarity = evidence @ text.mean(0)
    return torch.full((count,), -torch.inf).scatter_reduce(0, candidate, similarity, "amax")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fusion_latency.json"))
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--sentences", type=int, default=10, help="sentences per candidate")
    parser.add_argument("--text-tokens", type=int, default=2)
    parser.add_argument("--threads", type=int, nargs="+", default=[2, 1], help="torch threads (first: headline)")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()

    load = os.getloadavg()[0]
    torch.manual_seed(0)
    config = FusionConfig()
    model = CrossAttentionFusion(config).eval()
    query = _query(config, args.candidates, args.sentences, args.text_tokens)
    batch = collate([query], config)
    text, evidence, candidate = batch.text[0], batch.evidence[0], batch.evidence_candidate[0]

    fusion = {}
    for threads in args.threads:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            fusion[f"{threads}_threads"] = _percentiles(lambda: model(batch), args.warmup, args.repeats)
    torch.set_num_threads(args.threads[0])
    with torch.inference_mode():
        baseline = _percentiles(lambda: _cosine_rerank(text, evidence, candidate, args.candidates),
                                args.warmup, args.repeats)
    collate_ms = _percentiles(lambda: collate([query], config), args.warmup // 4, args.repeats // 4)
    headline = fusion[f"{args.threads[0]}_threads"]
    report = {
        "benchmark": "fusion_latency",
        "machine": {"cpu_count": os.cpu_count(), "load_average_1min_at_start": round(load, 2),
                    "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                    "python": platform.python_version(), "torch": torch.__version__},
        "workload": {"image": f"{config.image_dim}x{config.grid[0]}x{config.grid[1]}", "text_tokens": args.text_tokens,
                     "candidates": args.candidates, "sentences_per_candidate": args.sentences,
                     "d_model": config.d_model, "heads": config.heads, "layers": config.layers,
                     "parameters": sum(parameter.numel() for parameter in model.parameters())},
        "fusion_forward": fusion,
        "baseline_cosine_rerank": baseline,
        "collate": collate_ms,
        "ratio_fusion_to_baseline_p50": round(headline["p50_ms"] / baseline["p50_ms"], 1),
        "target_p50_ms": 30.0,
        "meets_target": headline["p50_ms"] < 30.0,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
