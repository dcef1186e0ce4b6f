"""End-to-end answer latency on 2 cores: search only, extractive answers, generative answers.

The same new queries go through three Assistants that share the models but not a cache (each query is new
to each of them): text-only PubMedQA questions and covid note + radiograph cases. Reported: p50/p95 of the
wall time of ``ask`` (``search`` for the baseline), the ratio of each answer mode to the search alone, and
the generator's tokens/s.

    python benchmarks/answer_latency.py --home /tmp/medrag-eval-home --out benchmarks/results/answer_latency.json

Needs a filled ``--tenant``: run ``benchmarks/query_latency.py`` or ``medrag eval retrieval`` first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from query_latency import benchmark_queries, percentiles
from tqdm import tqdm

from medrag.assistant import Assistant
from medrag.config import load_config
from medrag.encode.joint import JointEncoder
from medrag.encode.text import TextEncoder
from medrag.retrieve.cache import QueryCache
from medrag.store import ARTICLES, Store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="medrag home holding the filled tenant")
    parser.add_argument("--data-dir", type=Path, help="shared data folder (default: config data_dir)")
    parser.add_argument("--tenant", default="eval")
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--cases", type=int, default=15)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/answer_latency.json"))
    args = parser.parse_args()

    config = load_config().replace(home=args.home, weaviate={"url": None, "data_dir": None})
    questions, cases = benchmark_queries(args.data_dir or Path(config.data_dir))
    workloads = {"text_only": questions[-args.questions:], "note_and_image": cases[-args.cases:]}
    text_encoder, joint_encoder = TextEncoder(config.text_model), JointEncoder.load(config.joint_model)
    seconds: dict[str, dict[str, list[float]]] = {name: {} for name in workloads}
    tokens = generate_ms = 0.0
    with Store.open(config) as store:
        if not store.count(ARTICLES, tenant=args.tenant):
            sys.exit(f"tenant {args.tenant!r} in {args.home} is empty; run benchmarks/query_latency.py first")
        for mode in ("search", "extractive", "generative"):
            assistant = Assistant(config, store, text_encoder=text_encoder, joint_encoder=joint_encoder,
                                  cache=QueryCache())
            for name, queries in workloads.items():
                assistant.search(**queries[0], tenant=args.tenant)  # warm-up: lazy models load here
                if mode == "generative":
                    assistant.writer.language_model  # noqa: B018 (load it before timing)
                times = seconds[name].setdefault(mode, [])
                for query in tqdm(queries[1:], desc=f"{name} {mode}", unit="query"):
                    started = time.perf_counter()
                    if mode == "search":
                        assistant.search(**query, tenant=args.tenant)
                    else:
                        answer = assistant.ask(**query, tenant=args.tenant, mode=mode)
                        tokens += answer.tokens
                        generate_ms += answer.timings_ms.get("generate", 0.0)
                    times.append((time.perf_counter() - started) * 1000)
    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "torch_threads": os.environ.get("OMP_NUM_THREADS", "default")},
        "queries": {name: len(queries) - 1 for name, queries in workloads.items()},
        "latency": {name: {mode: percentiles(values) for mode, values in modes.items()}
                    for name, modes in seconds.items()},
        "ratios_p50_over_search": {name: {mode: round(percentiles(modes[mode])["p50_ms"] /
                                                      percentiles(modes["search"])["p50_ms"], 2)
                                          for mode in ("extractive", "generative")}
                                   for name, modes in seconds.items()},
        "generator_tokens_per_second": round(tokens / max(generate_ms / 1000, 1e-9), 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
