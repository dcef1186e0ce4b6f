"""Query latency per stage (prepare, embed, route, search, merge, fuse): p50/p95/p99 over real queries, warm and cold.

Queries: PubMedQA questions (text only) and covid cases (clinical note + radiograph), each asked
once after a warm-up, so the R5 caches miss as they would for new questions; then the same
queries again, to measure what the caches save. Baselines, in the same run: one bare Weaviate
hybrid query on PubMed articles with a precomputed vector (the floor any search stage pays), and the
same new queries through an Assistant with fusion off (what the reranker adds).

Image + note end to end (issue 15's target: under 400 ms p50): other covid cases, never searched before, asked
through ``Assistant.ask`` (extractive answer, the model's read included), wall clock; the baseline in the same
run is the same notes asked without their image, and text-only questions are asked the same way. The joint
image tower's encode speed and the models' sizes are reported beside it.

Cold start: what the first user after a restart waits for. A new process (spawned: no model, cache or
connection inherited) builds an Assistant on the running server (``assistant_start_ms``: the text encoder,
router, reranker and answer writer load), then asks one new text question and then one new note + image case;
each first ``ask`` pays what loads lazily on first use (the reader for the yes / no / maybe decision, the fusion
checkpoint; the joint tower and the read model with the first image). Each is reported per stage and end to end,
beside the warm p50 of the same kind (ratios).

    python benchmarks/query_latency.py --home /tmp/medrag-bench --out benchmarks/results/query_latency.json

The knowledge base (all PubMed sources, IU reports, covid cases) is ingested into ``--home`` first
(minutes the first time, seconds after). ``--questions`` (any PubMedQA-format JSON) and ``--metadata`` (any
metadata.csv-format file with its image folder) choose the queries; their abstracts and cases are ingested too.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import time
from multiprocessing.queues import Queue
from pathlib import Path

import numpy as np
from tqdm import tqdm

from medrag.assistant import STAGES, Assistant
from medrag.config import Config, load_config
from medrag.datasets.covid import read_covid_metadata
from medrag.datasets.pubmedqa import read_pubmedqa
from medrag.encode.joint import JointEncoder
from medrag.imaging.radiograph import load_image_file
from medrag.ingest.pipeline import Ingestor
from medrag.read.reader import DEFAULT_MODEL as READ_MODEL
from medrag.store import ARTICLES, TEXT_VECTOR, Store

QUESTIONS = Path("pubmed") / "pubmedqa_pqal_dev.json"
METADATA = Path("cxr") / "covid" / "metadata.csv"
"""Default query files, relative to the data dir: only defaults, any file in the same format works."""


def percentiles(values: list[float]) -> dict[str, float]:
    """p50/p95/p99 and mean (milliseconds in, milliseconds out); p99 shows the tail p95 hides under load."""
    return {f"p{q}_ms": round(float(np.percentile(values, q)), 2) for q in (50, 95, 99)} | {
        "mean_ms": round(statistics.fmean(values), 2)}


def load_queries(questions: Path, metadata: Path) -> tuple[list[dict], list[dict]]:
    """(text-only questions, note + image cases), in file order, from any PubMedQA-format JSON and any
    metadata.csv-format file (rows without a clinical note are left out: a case query is note + image)."""
    cases = [row for row in read_covid_metadata(metadata) if row.note]
    if not cases:
        raise ValueError(f"{metadata}: no row has 'clinical_notes'; note + image queries need a note per case")
    missing = [row.image_path for row in cases if not row.image_path.is_file()]
    if missing:
        raise ValueError(f"{metadata}: {len(missing)} image(s) missing, e.g. {missing[0]}; put the images in the "
                         "'folder' column's folder (default images/) beside the CSV")
    return ([{"question": record.question} for record in read_pubmedqa(questions)],
            [{"note": row.note, "image": row.image_path} for row in cases])


def add_query_options(parser: argparse.ArgumentParser) -> None:
    """The options every query benchmark shares: its home and the files its queries come from."""
    parser.add_argument("--home", type=Path, required=True, help="medrag home holding the benchmark knowledge base")
    parser.add_argument("--data-dir", type=Path, help="shared data folder (default: config data_dir)")
    parser.add_argument("--questions", type=Path, help=f"PubMedQA-format JSON (default: <data dir>/{QUESTIONS})")
    parser.add_argument("--metadata", type=Path, help="metadata.csv-format file with its image folder "
                        f"(default: <data dir>/{METADATA})")


def benchmark_config(args: argparse.Namespace) -> tuple[Config, Path, Path]:
    """The embedded server's config in ``--home``, and the question and case files (options or defaults)."""
    config = load_config().replace(home=args.home, weaviate={"url": None, "data_dir": None})
    data = args.data_dir or Path(config.data_dir)
    return config, args.questions or data / QUESTIONS, args.metadata or data / METADATA


def benchmark_queries(data: Path) -> tuple[list[dict], list[dict]]:
    """The default queries of a data dir (``QUESTIONS`` and ``METADATA`` under it)."""
    return load_queries(data / QUESTIONS, data / METADATA)


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


def _first_asks(home: Path, weaviate: dict, tenant: str, queries: dict[str, dict], results: Queue) -> None:
    """In a new process: build an Assistant on the running server, then ask each of ``queries`` (kind -> query)
    once, in order; put the start time and each first ask's wall time and stage timings on ``results``."""
    started = time.perf_counter()
    config = load_config().replace(home=home, weaviate=weaviate)
    assistant = Assistant(config, Store.open(config))
    report: dict = {"assistant_start_ms": round((time.perf_counter() - started) * 1000, 2)}
    for kind, query in queries.items():
        started = time.perf_counter()
        answer = assistant.ask(**query, tenant=tenant, mode="extractive")
        report[kind] = {"first_ask_ms": round((time.perf_counter() - started) * 1000, 2),
                        "stages_ms": {stage: round(ms, 2) for stage, ms in answer.timings_ms.items()}}
    assistant.close()
    results.put(report)


def _cold_start(store: Store, home: Path, tenant: str, queries: dict[str, dict],
                warm: dict[str, dict[str, dict[str, float]]]) -> dict:
    """The first asks of a new process (spawned: nothing loaded, nothing cached), each with its ratios to the warm
    p50 of its kind (``warm``: kind -> stage -> percentiles, plus ``ask``: the warm end-to-end ask)."""
    server = store.server
    assert server is not None, "the benchmark's config has no url: Store.open started the embedded server"
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_first_asks, args=(home, {
        "url": server.url, "api_key": server.api_key, "grpc_port": server.grpc_port}, tenant, queries, results))
    process.start()
    try:
        report = results.get(timeout=900)
    finally:
        process.join(timeout=60)
        if process.is_alive():
            process.kill()
    for kind in queries:
        first = report[kind]
        first["first_ask_over_warm_ask_p50"] = round(first["first_ask_ms"] / warm[kind]["ask"]["p50_ms"], 2)
        first["stage_over_warm_stage_p50"] = {stage: round(ms / warm[kind][stage]["p50_ms"], 2)
                                              for stage, ms in first["stages_ms"].items()
                                              if stage in warm[kind] and warm[kind][stage]["p50_ms"] > 0}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_query_options(parser)
    parser.add_argument("--tenant", default="eval", help="tenant to fill and search (default: the one "
                        "`medrag eval retrieval` fills, so the two share one ingestion)")
    parser.add_argument("--question-count", type=int, default=200, help="text-only questions searched")
    parser.add_argument("--case-count", type=int, default=100, help="note + image cases searched")
    parser.add_argument("--asked", type=int, default=50, help="image + note cases (and questions) asked end to end")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/query_latency.json"))
    args = parser.parse_args()

    config, questions_file, metadata = benchmark_config(args)
    data = args.data_dir or Path(config.data_dir)
    questions, cases = load_queries(questions_file, metadata)
    n_questions, n_cases = args.question_count, args.case_count
    queries = questions[:n_questions] + cases[:n_cases]
    warm_up = questions[n_questions:n_questions + 10] + cases[n_cases:n_cases + 10]
    fresh = cases[n_cases + 10:n_cases + 10 + args.asked]
    fresh_questions = questions[n_questions + 10:n_questions + 10 + args.asked]
    cold_question, cold_case = questions[n_questions + 10 + args.asked], cases[n_cases + 10 + args.asked]
    with Store.open(config) as store:
        ingestor = Ingestor(config, store, tenant=args.tenant)
        pubmed = [data / "pubmed"]
        if not questions_file.resolve().is_relative_to(pubmed[0].resolve()):
            pubmed.append(questions_file)  # the questions' own abstracts, when they come from elsewhere
        ingestor.pubmed(pubmed)
        ingestor.reports([data / "reports" / "iu-openi" / "NLMCXR_reports.tgz"])
        ingestor.images([metadata])
        assistant = Assistant(config, store, text_encoder=ingestor.text_encoder,
                              joint_encoder=ingestor.joint_encoder)
        _run(assistant, warm_up, args.tenant, "warm-up")
        first = _run(assistant, queries, args.tenant, "new queries")
        stats_first = assistant.retriever.cache.stats()
        repeated = _run(assistant, queries, args.tenant, "repeated queries")
        unfused = Assistant(config.replace(reranker="retrieval"), store, text_encoder=ingestor.text_encoder,
                            joint_encoder=ingestor.joint_encoder)
        without_fusion = _run(unfused, queries, args.tenant, "new queries, fusion off")
        image_and_note = _ask(assistant, fresh, args.tenant, "image + note, end to end")
        note_only = _ask(assistant, [{"note": case["note"]} for case in fresh], args.tenant, "note only, end to end")
        text_only = _ask(assistant, fresh_questions, args.tenant, "text only, end to end")
        speed = _encode_speed(ingestor.joint_encoder, [case["image"] for case in fresh])
        texts = [q["question"] for q in queries if "question" in q]
        baseline = []
        for question, vector in zip(texts, ingestor.text_encoder.encode(texts), strict=True):
            started = time.perf_counter()
            store.hybrid(ARTICLES, question, vector, alpha=0.75, target_vector=TEXT_VECTOR, limit=20,
                         tenant=args.tenant)
            baseline.append((time.perf_counter() - started) * 1000)
        split = len(queries) - len(cases[:n_cases])
        warm = {"text_only": {stage: percentiles(values[:split]) for stage, values in first.items() if values[:split]}
                | {"ask": percentiles(text_only)},
                "note_and_image": {stage: percentiles(values[split:]) for stage, values in first.items()
                                   if values[split:]} | {"ask": percentiles(image_and_note)}}
        cold = _cold_start(store, args.home, args.tenant,
                           {"text_only": cold_question, "note_and_image": cold_case}, warm)
    base = percentiles(baseline)
    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "inputs": {"questions": str(questions_file), "metadata": str(metadata)},
        "queries": {"text_only": sum("question" in q for q in queries), "note_and_image": sum("image" in q
                                                                                           for q in queries)},
        "new_queries": {stage: percentiles(values) for stage, values in first.items()},
        "repeated_queries": {stage: percentiles(values) for stage, values in repeated.items()},
        "baseline_bare_hybrid_query": base,
        "new_queries_fusion_off": {stage: percentiles(values) for stage, values in without_fusion.items() if values},
        "new_text_only_queries": {stage: stats for stage, stats in warm["text_only"].items() if stage != "ask"},
        "new_note_and_image_queries": {stage: stats for stage, stats in warm["note_and_image"].items()
                                       if stage != "ask"},
        "image_and_note_ask_end_to_end": percentiles(image_and_note),
        "baseline_note_only_ask_end_to_end": percentiles(note_only),
        "text_only_ask_end_to_end": percentiles(text_only),
        "cold_start": cold,
        "image_encoder": speed,
        "ratios": {
            "search_p50_over_bare_hybrid_p50": round(percentiles(first["search"])["p50_ms"] / base["p50_ms"], 2),
            "fusion_on_total_p50_over_fusion_off_total_p50": round(
                percentiles(first["total"])["p50_ms"] / percentiles(without_fusion["total"])["p50_ms"], 3),
            "repeated_total_p50_over_new_total_p50": round(
                percentiles(repeated["total"])["p50_ms"] / percentiles(first["total"])["p50_ms"], 3),
            "image_and_note_over_note_only_ask_p50": round(
                percentiles(image_and_note)["p50_ms"] / percentiles(note_only)["p50_ms"], 3),
            "cold_over_warm_ask_p50": {kind: cold[kind]["first_ask_over_warm_ask_p50"]
                                       for kind in ("text_only", "note_and_image")}},
        "targets": {"image_and_note_ask_p50_under_400_ms": percentiles(image_and_note)["p50_ms"] < 400},
        "cache_after_new_queries": stats_first,
        "cache_after_repeats": assistant.retriever.cache.stats(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({key: report[key] for key in ("new_queries", "image_and_note_ask_end_to_end",
                                                   "baseline_note_only_ask_end_to_end", "cold_start",
                                                   "image_encoder", "ratios", "targets")}, indent=2))


if __name__ == "__main__":
    main()
