"""Query latency per stage (prepare, embed, route, search, merge, fuse): p50/p95 over real queries, warm.

Queries: PubMedQA questions (text only) and covid cases (clinical note + radiograph), each asked
once after a warm-up, so the R5 caches miss as they would for new questions; then the same
queries again, to measure what the caches save. Baselines, in the same run: one bare Weaviate
hybrid query on PubMed articles with a precomputed vector (the floor any search stage pays), and the
same new queries through an Assistant with fusion off (what the reranker adds).

Image + note end to end (issue 15's target: under 400 ms p50): other covid cases, never searched before, asked
through ``Assistant.ask`` (extractive answer, the model's read included), wall clock; the baseline in the same
run is the same notes asked without their image. The joint image tower's encode speed and the models' sizes
are reported beside it.

    python benchmarks/query_latency.py --home /tmp/medrag-bench --out benchmarks/results/query_latency.json

The knowledge base (all PubMed sources, IU reports, covid cases) is ingested into ``--home`` first
(minutes the first time, seconds after).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from medrag.assistant import STAGES, Assistant
from medrag.config import load_config
from medrag.encode.joint import JointEncoder
from medrag.imaging.radiograph import load_image_file
from medrag.ingest.pipeline import Ingestor
from medrag.read.reader import DEFAULT_MODEL as READ_MODEL
from medrag.store import ARTICLES, TEXT_VECTOR, Store


def percentiles(values: list[float]) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(values, 50)), 2), "p95_ms": round(float(np.percentile(values, 95)), 2),
            "mean_ms": round(statistics.fmean(values), 2)}


def benchmark_queries(data: Path) -> tuple[list[dict], list[dict]]:
    """(text-only questions, note + image cases), in file order."""
    qa = json.loads((data / "pubmed" / "pubmedqa_pqal_dev.json").read_text())
    metadata = data / "cxr" / "covid" / "metadata.csv"
    with metadata.open(newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row.get("clinical_notes", "").strip()]
    return ([{"question": entry["QUESTION"]} for entry in qa.values()],
            [{"note": row["clinical_notes"], "image": metadata.parent / (row.get("folder") or "images") /
              row["filename"]} for row in rows])


def _run(assistant: Assistant, queries: list[dict], tenant: str, label: str) -> dict[str, list[float]]:
    timings: dict[str, list[float]] = {stage: [] for stage in (*STAGES, "total")}
    for query in tqdm(queries, desc=label, unit="query"):
        result = assistant.search(**query, tenant=tenant)
        for stage, ms in result.timings_ms.items():
            timings[stage].append(ms)
        timings["total"].append(sum(result.timings_ms.values()))
    return timings


def _ask(assistant: Assistant, queries: list[dict], tenant: str, label: str) -> list[float]:
    """Wall-clock milliseconds of ``Assistant.ask`` (extractive) per query: what a caller waits for."""
    elapsed = []
    for query in tqdm(queries, desc=label, unit="query"):
        started = time.perf_counter()
        assistant.ask(**query, tenant=tenant, mode="extractive")
        elapsed.append((time.perf_counter() - started) * 1000)
    return elapsed


def _encode_speed(encoder: JointEncoder, paths: list[Path], batch: int = 32) -> dict[str, float]:
    """Images per second of the joint image tower (decoding excluded) and its size."""
    images = [load_image_file(path) for path in paths]
    started = time.perf_counter()
    for start in range(0, len(images), batch):
        encoder.encode_images(images[start:start + batch])
    seconds = time.perf_counter() - started
    parameters = sum(p.numel() for p in encoder.model.visual.parameters())
    return {"images": len(images), "images_per_second": round(len(images) / seconds, 1),
            "image_tower_parameters_m": round(parameters / 1e6, 2),
            "image_tower_fp32_mb": round(parameters * 4 / 2**20, 1),
            "read_model_kb": round(sum(f.stat().st_size for f in READ_MODEL.glob("*.skops")) / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True, help="medrag home holding the benchmark knowledge base")
    parser.add_argument("--data-dir", type=Path, help="shared data folder (default: config data_dir)")
    parser.add_argument("--tenant", default="eval", help="tenant to fill and search (default: the one "
                        "`medrag eval retrieval` fills, so the two share one ingestion)")
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--asked", type=int, default=50, help="image + note cases asked end to end")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/query_latency.json"))
    args = parser.parse_args()

    config = load_config().replace(home=args.home, weaviate={"url": None, "data_dir": None})
    data = args.data_dir or Path(config.data_dir)
    questions, cases = benchmark_queries(data)
    queries = questions[:args.questions] + cases[:args.cases]
    warm_up = questions[args.questions:args.questions + 10] + cases[args.cases:args.cases + 10]
    with Store.open(config) as store:
        ingestor = Ingestor(config, store, tenant=args.tenant)
        ingestor.pubmed([data / "pubmed"])
        ingestor.reports([data / "reports" / "iu-openi" / "NLMCXR_reports.tgz"])
        ingestor.images([data / "cxr" / "covid" / "metadata.csv"])
        assistant = Assistant(config, store, text_encoder=ingestor.text_encoder,
                              joint_encoder=ingestor.joint_encoder)
        _run(assistant, warm_up, args.tenant, "warm-up")
        first = _run(assistant, queries, args.tenant, "new queries")
        stats_first = assistant.retriever.cache.stats()
        repeated = _run(assistant, queries, args.tenant, "repeated queries")
        unfused = Assistant(config.replace(reranker="retrieval"), store, text_encoder=ingestor.text_encoder,
                            joint_encoder=ingestor.joint_encoder)
        without_fusion = _run(unfused, queries, args.tenant, "new queries, fusion off")
        fresh = cases[args.cases + 10:args.cases + 10 + args.asked]
        image_and_note = _ask(assistant, fresh, args.tenant, "image + note, end to end")
        note_only = _ask(assistant, [{"note": case["note"]} for case in fresh], args.tenant, "note only, end to end")
        speed = _encode_speed(ingestor.joint_encoder, [case["image"] for case in fresh])
        texts = [q["question"] for q in queries if "question" in q]
        baseline = []
        for question, vector in zip(texts, ingestor.text_encoder.encode(texts), strict=True):
            started = time.perf_counter()
            store.hybrid(ARTICLES, question, vector, alpha=0.75, target_vector=TEXT_VECTOR, limit=20,
                         tenant=args.tenant)
            baseline.append((time.perf_counter() - started) * 1000)
    base = percentiles(baseline)
    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "queries": {"text_only": sum("question" in q for q in queries), "note_and_image": sum("image" in q
                                                                                           for q in queries)},
        "new_queries": {stage: percentiles(values) for stage, values in first.items()},
        "repeated_queries": {stage: percentiles(values) for stage, values in repeated.items()},
        "baseline_bare_hybrid_query": base,
        "new_queries_fusion_off": {stage: percentiles(values) for stage, values in without_fusion.items() if values},
        "new_note_and_image_queries": {stage: percentiles(values[len(queries) - len(cases[:args.cases]):])
                                       for stage, values in first.items() if values},
        "image_and_note_ask_end_to_end": percentiles(image_and_note),
        "baseline_note_only_ask_end_to_end": percentiles(note_only),
        "image_encoder": speed,
        "ratios": {
            "search_p50_over_bare_hybrid_p50": round(percentiles(first["search"])["p50_ms"] / base["p50_ms"], 2),
            "fusion_on_total_p50_over_fusion_off_total_p50": round(
                percentiles(first["total"])["p50_ms"] / percentiles(without_fusion["total"])["p50_ms"], 3),
            "repeated_total_p50_over_new_total_p50": round(
                percentiles(repeated["total"])["p50_ms"] / percentiles(first["total"])["p50_ms"], 3),
            "image_and_note_over_note_only_ask_p50": round(
                percentiles(image_and_note)["p50_ms"] / percentiles(note_only)["p50_ms"], 3)},
        "targets": {"image_and_note_ask_p50_under_400_ms": percentiles(image_and_note)["p50_ms"] < 400},
        "cache_after_new_queries": stats_first,
        "cache_after_repeats": assistant.retriever.cache.stats(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({key: report[key] for key in ("new_queries", "image_and_note_ask_end_to_end",
                                                   "baseline_note_only_ask_end_to_end", "image_encoder", "ratios",
                                                   "targets")}, indent=2))


if __name__ == "__main__":
    main()
