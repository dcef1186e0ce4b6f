"""Concurrent clients: N processes, each with its own Assistant, asking one Weaviate server mixed questions.

What a hospital deployment with several workers sees: every client process loads the models itself (the
Assistant lets one request at a time through its models, so parallelism comes from processes, not threads) and
all of them query the same server. Each client asks, back to back for ``--seconds``, a mix that alternates
text-only questions (PubMedQA) and note + image cases (a clinical note with its radiograph, from a
metadata.csv-format file), through ``Assistant.ask`` in extractive mode: the generative mode would make this a
benchmark of the language model alone. Client i starts its walk through the mix at offset i/N of it, so clients
do not ask the same question at the same moment, and no client repeats a query before it has asked the whole
mix (its R5 cache would otherwise answer).

The client processes start once: each loads its models and asks one warm-up question and one warm-up case
(not counted), then a barrier releases the phase's clients at once, so model loading never counts as latency
(``clients_startup_seconds`` shows what it took). Per request: kind (text / image), wall time of ``ask``, the
time of its yes / no / maybe decision (the reader, a causal LM, scores yes/no questions even in extractive mode,
and on a few cores that step dominates text questions: ``MEDRAG_GENERATOR_MODEL`` picks a smaller reader), and
for a failure the exception type and message with the query's own text removed (no PHI in the output). Reported
per phase: requests, throughput overall and per kind, p50/p95/p99 latency overall and per kind (and of the
decision), errors with the first messages, per-client counts, peak resident memory and unique memory (USS: the
reader's weights are memory-mapped and shared between clients, so RSS counts them once per client), and the
server's resident memory (psutil) at the start and end and its sampled peak.

Baseline, in the same run and by the same processes: first client 0 alone asks the mix for
``--baseline-seconds`` (the others wait, idle, at the next barrier), then all N ask. The report gives the
throughput ratio (N clients / 1 client) against its ceiling min(N, cores), and the p95 ratio: what waiting for a
core costs each request. In each phase an asking client's torch gets cores // clients threads (at least 1), the
lone baseline client all cores, so the N clients do not oversubscribe the cores with torch (the reader's
llama.cpp context takes every core in every client: ``medrag.lm.llama`` has no thread setting). Client 0 walks
on through the mix from where its baseline left it, so it does not meet its own cache either.

    python benchmarks/concurrency.py --home /tmp/medrag-bench --clients 8 --seconds 120

The knowledge base the queries need (the questions' abstracts, the cases, ``--reports`` if given) is ingested
into ``--tenant`` of the embedded server in ``--home`` first; the ingestion is idempotent, so a home filled by
``query_latency.py`` is reused. The parent starts the server once; the clients connect to its port with its key.
Client logs (library output) go to ``<home>/concurrency-logs/``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import sys
import threading
import time
import traceback
from collections import Counter
from datetime import UTC, datetime
from itertools import zip_longest
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import psutil
import torch
from ingest_throughput import PeakMemory, lifetime_peak_rss_bytes
from query_latency import add_query_options, benchmark_config, load_queries, percentiles
from scale import machine
from tqdm import tqdm

from medrag.assistant import Assistant
from medrag.config import load_config
from medrag.ingest.pipeline import Ingestor
from medrag.store import Store

KINDS = ("text", "image")
FIRST_ERRORS = 5


@dataclasses.dataclass(frozen=True)
class Phase:
    """The first ``clients`` client processes ask for ``seconds``; the others wait for the next phase."""

    name: str
    clients: int
    seconds: float

    @property
    def threads(self) -> int:
        """Torch threads per asking client: the cores shared out, so N clients do not oversubscribe them."""
        return max(1, (os.cpu_count() or 1) // self.clients)


@dataclasses.dataclass(frozen=True)
class ClientPlan:
    """What one client process is given (pickled to it): where the server is, and what to ask when."""

    index: int
    home: Path
    weaviate: dict[str, Any]
    """``Config.weaviate`` fields that point the client at the parent's server (url, api key, gRPC port)."""
    tenant: str
    mix: list[dict[str, Any]]
    offset: int
    warm_up: list[dict[str, Any]]
    phases: list[Phase]
    log: Path


def kind_of(query: dict[str, Any]) -> str:
    return "image" if "image" in query else "text"


def interleave(questions: list[dict], cases: list[dict]) -> list[dict]:
    """Text and image queries alternating (the longer list's rest at the end): every stretch of the walk is mixed."""
    return [query for pair in zip_longest(questions, cases) for query in pair if query is not None]


def describe_error(error: BaseException, query: dict[str, Any]) -> str:
    """``Type: message`` with the query's question and note cut out (messages may quote their input)."""
    message = str(error)
    for text in (query.get("question"), query.get("note")):
        if text:
            message = message.replace(text, "<query text>")
    return f"{type(error).__name__}: {message[:300]}"


def _ask_until(assistant: Assistant, plan: ClientPlan, position: int, seconds: float) -> tuple[dict[str, Any], int]:
    """Ask the mix from ``position`` on, back to back, for ``seconds``: the records and the next position."""
    records = []
    began = time.perf_counter()  # CLOCK_MONOTONIC on Linux: comparable between the client processes
    while time.perf_counter() < began + seconds:
        query = plan.mix[position % len(plan.mix)]
        position += 1
        error, decide_ms = None, 0.0
        started = time.perf_counter()
        try:
            decide_ms = assistant.ask(**query, tenant=plan.tenant, mode="extractive").timings_ms.get("decide", 0.0)
        except Exception as caught:  # recorded, not raised: one failed request must not end the measurement
            error = describe_error(caught, query)
        records.append({"kind": kind_of(query), "ms": (time.perf_counter() - started) * 1000,
                        "decide_ms": decide_ms, "error": error})
    return {"client": plan.index, "records": records, "began": began, "ended": time.perf_counter()}, position


def run_client(plan: ClientPlan, start: Barrier, results: Queue) -> None:
    """One client process: connect, load, warm up; then per phase wait at the barrier and, if asked to, ask until
    the phase's time is up and report. The walk through the mix goes on across phases, so a client never meets
    its own cache from an earlier phase."""
    plan.log.parent.mkdir(parents=True, exist_ok=True)
    with plan.log.open("a") as log:  # library output (model loading, warnings) stays off the terminal
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        config = load_config().replace(home=plan.home, weaviate=plan.weaviate)
        assistant = Assistant(config, Store.open(config))
        for query in plan.warm_up:
            assistant.ask(**query, tenant=plan.tenant, mode="extractive")
    except BaseException:
        start.abort()
        results.put({"client": plan.index, "fatal": traceback.format_exc(limit=5)})
        raise
    position = plan.offset
    for phase in plan.phases:
        start.wait()
        if plan.index < phase.clients:
            torch.set_num_threads(phase.threads)
            result, position = _ask_until(assistant, plan, position, phase.seconds)
            results.put(result | {"peak_rss_bytes": lifetime_peak_rss_bytes(),
                                  "uss_bytes": psutil.Process().memory_full_info().uss,
                                  "cache": assistant.retriever.cache.stats()})
    assistant.close()


def summarise(clients: list[dict[str, Any]], threads: int) -> dict[str, Any]:
    """One phase's figures from its clients' records; throughput over the phase's wall time (first client's
    start to last client's end: requests that started before the deadline all count)."""
    seconds = max(c["ended"] for c in clients) - min(c["began"] for c in clients)
    records = [record for client in clients for record in client["records"]]
    done = [record for record in records if record["error"] is None]
    errors = [record["error"] for record in records if record["error"] is not None]
    by_kind = {}
    for kind in KINDS:
        mine = [record for record in done if record["kind"] == kind]
        by_kind[kind] = {"requests": len(mine), "throughput_rps": round(len(mine) / seconds, 3),
                         **(percentiles([record["ms"] for record in mine]) if mine else {}),
                         "decide": percentiles([record["decide_ms"] for record in mine]) if mine else {}}
    return {
        "clients": len(clients), "torch_threads_per_client": threads, "seconds": round(seconds, 2),
        "requests": len(done), "throughput_rps": round(len(done) / seconds, 3),
        "latency": percentiles([record["ms"] for record in done]) if done else {},
        "by_kind": by_kind, "errors": len(errors), "first_errors": errors[:FIRST_ERRORS],
        "error_counts": dict(Counter(error.split(":", 1)[0] for error in errors)),
        "per_client": [{"client": c["client"], "requests": len(c["records"]),
                        **{kind: sum(r["kind"] == kind for r in c["records"]) for kind in KINDS},
                        "errors": sum(r["error"] is not None for r in c["records"]),
                        "peak_rss_mib": round(c["peak_rss_bytes"] / 2**20, 1),
                        "unique_memory_mib_at_end": round(c["uss_bytes"] / 2**20, 1),
                        "results_cache_hit_rate_since_start": round(c["cache"].get("results_hit_rate", 0.0), 3)}
                       for c in sorted(clients, key=lambda c: c["client"])],
    }


def server_rss_mib(pid: int | None) -> float | None:
    return round(psutil.Process(pid).memory_info().rss / 2**20, 1) if pid is not None else None


def run_phases(plan: dict[str, Any], phases: list[Phase], server_pid: int | None,
               startup_timeout: float) -> dict[str, Any]:
    """Start as many client processes as the largest phase needs (spawned: no torch or gRPC state is forked,
    and each loads its models once), then run the phases one after the other, each released by one barrier."""
    context = multiprocessing.get_context("spawn")
    clients = max(phase.clients for phase in phases)
    start, results = context.Barrier(clients + 1), context.Queue()
    logs = plan["home"] / "concurrency-logs"
    processes = [context.Process(target=run_client, name=f"client-{index}", args=(ClientPlan(
        index=index, offset=index * len(plan["mix"]) // clients, phases=phases, log=logs / f"client-{index}.log",
        **plan), start, results)) for index in range(clients)]
    spawned = time.perf_counter()
    for process in processes:
        process.start()
    report: dict[str, Any] = {}
    try:
        for number, phase in enumerate(phases):
            try:
                start.wait(startup_timeout if number == 0 else None)
            except threading.BrokenBarrierError:
                failure = results.get(timeout=10)["fatal"] if not results.empty() else (
                    f"no failure reported, but not every client was ready after {startup_timeout:.0f} s; "
                    "raise --startup-timeout")
                raise SystemExit(f"a client did not start (logs in {logs}):\n{failure}") from None
            if number == 0:
                report["clients_startup_seconds"] = round(time.perf_counter() - spawned, 1)
                print(f"{clients} client(s) loaded and warmed up in {report['clients_startup_seconds']:.0f} s",
                      file=sys.stderr)
            rss_start = server_rss_mib(server_pid)
            with PeakMemory({"server": server_pid}) as memory:
                for _ in tqdm(range(round(phase.seconds)), desc=f"{phase.name}: {phase.clients} client(s)",
                              unit="s"):
                    time.sleep(1)
                # A request under way when the time is up still ends (a yes/no decision may take a minute).
                collected = [results.get(timeout=phase.seconds + 600) for _ in range(phase.clients)]
            server = {"start": rss_start, "end": server_rss_mib(server_pid), "peak_sampled": round(
                memory.peaks["server"] / 2**20, 1) if "server" in memory.peaks else None}
            report[phase.name] = summarise(collected, phase.threads) | {"requested_seconds": phase.seconds,
                                                                       "server_rss_mib": server}
    finally:
        start.abort()  # clients still waiting for a phase (the parent failed) end instead of hanging
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
    return report


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return round(numerator / denominator, 3) if numerator is not None and denominator else None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_query_options(parser)
    parser.add_argument("--reports", type=Path, nargs="*", default=[],
                        help="report files or folders to ingest as well (IU XML/.tgz or CSV), e.g. NLMCXR_reports.tgz")
    parser.add_argument("--tenant", default="eval", help="tenant to fill and ask (default: query_latency.py's)")
    parser.add_argument("--clients", type=int, default=8, help="client processes asking at once")
    parser.add_argument("--seconds", type=float, default=120.0, help="how long the N clients ask")
    parser.add_argument("--baseline-seconds", type=float, default=30.0, help="how long the single client asks")
    parser.add_argument("--question-count", type=int, help="use the first n questions (default: all)")
    parser.add_argument("--case-count", type=int, help="use the first n note + image cases (default: all)")
    parser.add_argument("--startup-timeout", type=float, default=900.0,
                        help="seconds all clients may take to load their models and warm up")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/concurrency.json"))
    args = parser.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0 or args.baseline_seconds <= 0:
        parser.error("--clients must be >= 1 and --seconds, --baseline-seconds > 0")

    config, questions_file, metadata = benchmark_config(args)
    for path, option in ((questions_file, "--questions"), (metadata, "--metadata"), *(
            (report, "--reports") for report in args.reports)):
        if not path.exists():
            parser.error(f"{path} not found; pass {option} or set MEDRAG_DATA_DIR to the shared data folder")
    questions, cases = load_queries(questions_file, metadata)
    questions, cases = questions[:args.question_count], cases[:args.case_count]
    if len(questions) < 2 or len(cases) < 2:
        parser.error(f"need at least 2 questions and 2 note + image cases (one of each warms up), got "
                     f"{len(questions)} in {questions_file} and {len(cases)} in {metadata}")
    report: dict[str, Any] = {
        "benchmark": "concurrency", "date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": machine(),
        "inputs": {"questions": str(questions_file), "metadata": str(metadata),
                   "reports": [str(path) for path in args.reports]},
        "answer_mode": "extractive", "mix": {"text": len(questions) - 1, "image": len(cases) - 1},
    }
    with Store.open(config, log=lambda line: print(line, file=sys.stderr)) as store:
        ingestor = Ingestor(config, store, tenant=args.tenant, progress=True)
        ingestor.pubmed([questions_file])
        ingestor.images([metadata])
        if args.reports:
            ingestor.reports(args.reports)
        del ingestor  # its encoders: the clients load their own
        server = store.server
        assert server is not None, "the config above has no url: Store.open started the embedded server"
        plan = {"home": args.home, "tenant": args.tenant, "mix": interleave(questions[1:], cases[1:]),
                "warm_up": [questions[0], cases[0]],
                "weaviate": {"url": server.url, "api_key": server.api_key, "grpc_port": server.grpc_port}}
        report |= run_phases(plan, [Phase("baseline_one_client", 1, args.baseline_seconds),
                                    Phase("concurrent", args.clients, args.seconds)], server.pid,
                             args.startup_timeout)
    base, many = report["baseline_one_client"], report["concurrent"]
    report["ratios"] = {
        "throughput_n_over_1": ratio(many["throughput_rps"], base["throughput_rps"]),
        "throughput_ceiling_min_n_cores": min(args.clients, os.cpu_count() or 1),
        "p95_n_over_1": ratio(many["latency"].get("p95_ms"), base["latency"].get("p95_ms")),
        "by_kind": {kind: {"throughput_n_over_1": ratio(many["by_kind"][kind]["throughput_rps"],
                                                        base["by_kind"][kind]["throughput_rps"]),
                           "p95_n_over_1": ratio(many["by_kind"][kind].get("p95_ms"),
                                                 base["by_kind"][kind].get("p95_ms"))} for kind in KINDS}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"ratios": report["ratios"]} | {
        phase: {key: report[phase][key] for key in ("clients", "requests", "throughput_rps", "latency", "errors",
                                                    "server_rss_mib")}
        for phase in ("baseline_one_client", "concurrent")}, indent=2))
    return report


if __name__ == "__main__":
    main()
