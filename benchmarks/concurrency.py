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

Memory over time: every ``--memory-interval`` seconds of each phase the resident memory of the server (the sum
over every weaviate-server process: one, or each node of a cluster) and of each asking client is recorded, and
:func:`flatness` says whether it stayed flat (a leak is a slope over a long run, which a peak cannot tell from a
burst); the series are plotted to the ``--out`` file's ``.png``. ``reliability/load.py`` runs the same machinery
for 10 minutes (:func:`measure`).

Baseline, in the same run and by the same processes: first client 0 alone asks the mix for
``--baseline-seconds`` (the others wait, idle, at the next barrier), then all N ask. The report gives the
throughput ratio (N clients / 1 client) against its ceiling min(N, cores), and the p95 ratio: what waiting for a
core costs each request. In each phase an asking client's torch gets cores // clients threads (at least 1), the
lone baseline client all cores, so the N clients do not oversubscribe the cores with torch (the reader's
llama.cpp context takes every core in every client: ``medrag.lm.llama`` has no thread setting). Client 0 walks
on through the mix from where its baseline left it, so it does not meet its own cache either.

    python benchmarks/concurrency.py --home /tmp/medrag-bench --clients 8 --seconds 120
    python benchmarks/concurrency.py --home /tmp/medrag-bench --clients 4 --seconds 120 --cluster 3

The knowledge base the queries need (the questions' abstracts, the cases, ``--reports`` if given) is ingested
into ``--tenant`` of the embedded server in ``--home`` first; the ingestion is idempotent, so a home filled by
``query_latency.py`` is reused. The parent starts the server once; the clients connect to its port with its key.
With ``--cluster N`` the server is instead a :class:`~medrag.store.cluster.LocalCluster` of N nodes in
``<home>/concurrency-cluster-N`` with replication factor N (every node holds every object), and client i connects
to node i mod N. Client logs (library output) go to ``<home>/concurrency-logs/``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import multiprocessing
import os
import statistics
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from itertools import zip_longest
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from ingest_throughput import PeakMemory, Sampler, lifetime_peak_rss_bytes
from query_latency import add_query_options, benchmark_config, load_queries, percentiles
from scale import machine
from scipy import stats
from tqdm import tqdm

from medrag.assistant import Assistant
from medrag.config import Config
from medrag.ingest.pipeline import Ingestor
from medrag.reporting import pyplot, save_figure
from medrag.store import Store
from medrag.store.binary import find_binary
from medrag.store.cluster import LocalCluster

KINDS = ("text", "image")
FIRST_ERRORS = 5
FLAT_GROWTH = 0.10
"""Resident memory counts as flat when it grew by less than this share between the early and the late window, and
the least-squares trend's 95% lower bound adds less than this share over the run: a 10-minute run cannot see a
leak smaller than that, and memory that settles (caches filling, pages of memory-mapped weights touched) must not
count as a leak."""
WARM_UP_SHARE = 0.10
"""First share of a run's samples left out of :func:`flatness`: caches and lazily loaded weights settle there."""
WINDOW_SHARE = 0.10
"""Share of a run's samples in the early window (right after the warm-up) and in the late window (the end)."""
MIN_SAMPLES = 8
"""Fewer samples than this give no flatness figure: the windows and the trend's interval would be one or two
points."""
SCHEMA_TIMEOUT_S = 120.0
"""Timeout of the parent's connection to a cluster: creating the schema with replication on a loaded 2-core machine
takes more than the default 30 s. The clients keep the configured timeout: a slow query is what they measure."""


class ClientsFailed(RuntimeError):
    """A client process did not load or warm up: the run cannot measure what it was asked to."""


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
class Workload:
    """What the clients ask (the mix and the warm-up) and the files whose knowledge base that needs: one value the
    CLI and ``reliability/load.py`` both build, so the two measure the same thing."""

    questions: list[dict[str, Any]]
    cases: list[dict[str, Any]]
    tenant: str
    questions_file: Path
    metadata: Path
    reports: tuple[Path, ...] = ()

    @classmethod
    def from_files(cls, questions_file: Path, metadata: Path, tenant: str, *, question_count: int | None = None,
                   case_count: int | None = None, reports: Sequence[Path] = ()) -> Workload:
        """The first ``question_count`` questions and ``case_count`` note + image cases of the files (default: all);
        at least two of each, since one of each warms up."""
        questions, cases = load_queries(questions_file, metadata)
        questions, cases = questions[:question_count], cases[:case_count]
        if len(questions) < 2 or len(cases) < 2:
            raise ValueError(f"need at least 2 questions and 2 note + image cases (one of each warms up), got "
                             f"{len(questions)} in {questions_file} and {len(cases)} in {metadata}")
        return cls(questions, cases, tenant, questions_file, metadata, tuple(reports))

    @property
    def mix(self) -> list[dict[str, Any]]:
        return interleave(self.questions[1:], self.cases[1:])

    @property
    def warm_up(self) -> list[dict[str, Any]]:
        return [self.questions[0], self.cases[0]]

    def ingest(self, store: Store) -> None:
        """The questions' abstracts, the cases and the reports into the tenant (idempotent); the encoders are
        dropped afterwards, since the clients load their own."""
        ingestor = Ingestor(store.config, store, tenant=self.tenant, progress=True)
        ingestor.pubmed([self.questions_file])
        ingestor.images([self.metadata])
        if self.reports:
            ingestor.reports(self.reports)


@dataclasses.dataclass(frozen=True)
class ClientPlan:
    """What one client process is given (pickled to it): its settings, and what to ask when."""

    index: int
    config: Config
    """The parent's settings pointed at this client's server or cluster node (url, api key, gRPC port)."""
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
        assistant = Assistant(plan.config, Store.open(plan.config))
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


def rss_mib(pids: Sequence[int]) -> float | None:
    """Resident memory of the processes together (a cluster's nodes), MiB; None when none of them is running."""
    total, running = 0, False
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
            running = True
        except psutil.Error:  # gone (or not ours to read): left out, as PeakMemory does
            continue
    return round(total / 2**20, 1) if running else None


def flatness(times_s: Sequence[float], rss: Sequence[float], *, warm_up: float = WARM_UP_SHARE,
             window: float = WINDOW_SHARE, threshold: float = FLAT_GROWTH) -> dict[str, Any]:
    """Whether a memory series (samples at ``times_s`` seconds, MiB, evenly spaced) stayed flat over a run.

    The first ``warm_up`` share of the samples is left out. Two figures, both must stay under ``threshold``:
    growth, the median of the last ``window`` share of the samples over the median of the first ``window`` share
    after the warm-up, minus 1 (medians: one sample caught mid-request must not decide); and the trend, the
    least-squares slope after the warm-up (MiB per minute, with its 95% t-interval) times the run's length, at the
    interval's lower end, as a share of the early median. The lower end, so that noise alone never fails a run:
    only a slope the samples show beyond doubt does.
    """
    if len(times_s) != len(rss):
        raise ValueError(f"{len(times_s)} times but {len(rss)} memory samples")
    count = len(rss)
    if count < MIN_SAMPLES:
        return {"samples": count, "flat": None, "why": f"fewer than {MIN_SAMPLES} samples: too short to judge"}
    skip = math.ceil(warm_up * count)
    width = max(1, round(window * count))
    minutes = np.asarray(times_s[skip:], dtype=float) / 60
    values = np.asarray(rss[skip:], dtype=float)
    early, late = statistics.median(values[:width]), statistics.median(values[-width:])
    slope, intercept = np.polyfit(minutes, values, 1)
    spread = float(((minutes - minutes.mean()) ** 2).sum())
    residual = float(((values - (slope * minutes + intercept)) ** 2).sum()) / (len(values) - 2)
    half = float(stats.t.ppf(0.975, len(values) - 2)) * math.sqrt(residual / spread) if spread else math.inf
    span = float(minutes[-1] - minutes[0])
    growth = late / early - 1
    trend = (slope - half) * span / early
    return {
        "samples": count, "after_warm_up": len(values), "warm_up_until_s": float(times_s[skip]),
        "early_window_s": [float(times_s[skip]), float(times_s[skip + width - 1])],
        "late_window_s": [float(times_s[-width]), float(times_s[-1])],
        "early_median_mib": round(early, 1), "late_median_mib": round(late, 1),
        "growth": round(growth, 4), "slope_mib_per_min": round(float(slope), 3),
        "slope_95ci_mib_per_min": [round(float(slope) - half, 3), round(float(slope) + half, 3)],
        "span_min": round(span, 2), "trend_growth_lower_bound": round(trend, 4), "threshold": threshold,
        "flat": bool(growth < threshold and trend < threshold),
    }


class MemoryTimeline(Sampler):
    """Resident memory of named groups of processes every ``interval`` seconds while the block runs (a daemon thread).

    A group's value is the sum over its processes (every node of a cluster) and None once none of them runs. Beside
    :class:`PeakMemory`'s 50 ms peaks, not instead: a leak is a slope over minutes, which a peak cannot tell from a
    burst, and a few seconds between samples keep a 10-minute series small.
    """

    def __init__(self, groups: Mapping[str, Sequence[int]], interval: float) -> None:
        super().__init__(interval)
        self.groups = {name: list(pids) for name, pids in groups.items()}
        self.samples: list[dict[str, float | None]] = []

    def _sample(self) -> None:
        self.samples.append({"t_s": round(time.monotonic() - self.began, 2)} | {
            name: rss_mib(pids) for name, pids in self.groups.items()})

    def series(self, name: str) -> tuple[list[float], list[float]]:
        """(seconds since the start, MiB) of one group, the samples where it ran."""
        kept = [(sample["t_s"], sample[name]) for sample in self.samples if sample[name] is not None]
        return [t for t, _ in kept], [value for _, value in kept]

    def report(self) -> dict[str, Any]:
        """The samples and each group's :func:`flatness`."""
        return {"interval_s": self.interval, "samples": self.samples,
                "flatness": {name: flatness(*self.series(name)) for name in self.groups}}


def plot_memory(panels: Mapping[str, Mapping[str, Any]], path: Path, title: str) -> Path:
    """Resident memory over time, one row per run (label -> a :meth:`MemoryTimeline.report`): the server on the
    left, each client on the right (their scales differ tenfold), the warm-up shaded grey and the two windows that
    :func:`flatness` compares shaded blue, so a reader sees what the growth figure was computed from."""
    plt = pyplot()
    figure, axes = plt.subplots(len(panels), 2, figsize=(11, 3.2 * len(panels)), squeeze=False)
    for row, (label, memory) in zip(axes, panels.items(), strict=True):
        samples = memory["samples"]
        clients = [name for name in memory["flatness"] if name != "server"]
        for axis, names, part in ((row[0], ["server"], "server (every weaviate-server process)"),
                                  (row[1], clients, "each client")):
            for name in names:
                kept = [(s["t_s"] / 60, s[name]) for s in samples if s.get(name) is not None]
                judged_line = memory["flatness"][name]
                growth = f"{judged_line['growth']:+.1%}" if judged_line.get("flat") is not None else "n/a"
                axis.plot([t for t, _ in kept], [v for _, v in kept], linewidth=1.5 if name == "server" else 1,
                          label=f"{name} (growth {growth})")
            judged = memory["flatness"][names[0]] if names else {}
            if judged.get("flat") is not None:
                axis.axvspan(0, judged["warm_up_until_s"] / 60, color="grey", alpha=0.15)
                for window in ("early_window_s", "late_window_s"):
                    axis.axvspan(judged[window][0] / 60, judged[window][1] / 60, color="tab:blue", alpha=0.1)
            axis.set_title(f"{label}: {part}", fontsize=9)
            axis.set_xlabel("minutes")
            axis.set_ylabel("RSS, MiB")
            axis.grid(alpha=0.3)
            axis.legend(fontsize=7)
    figure.suptitle(title, fontsize=10)
    return save_figure(figure, path)


def run_phases(workload: Workload, targets: Sequence[Config], phases: list[Phase], server_pids: Sequence[int],
               log_dir: Path, *, startup_timeout: float = 900.0, memory_interval: float = 2.0) -> dict[str, Any]:
    """Start as many client processes as the largest phase needs (spawned: no torch or gRPC state is forked,
    and each loads its models once; client i connects to ``targets[i % len(targets)]``), then run the phases one
    after the other, each released by one barrier, sampling the server's and the asking clients' memory."""
    context = multiprocessing.get_context("spawn")
    clients = max(phase.clients for phase in phases)
    start, results = context.Barrier(clients + 1), context.Queue()
    mix = workload.mix
    processes = [context.Process(target=run_client, name=f"client-{index}", args=(ClientPlan(
        index=index, config=targets[index % len(targets)], tenant=workload.tenant, mix=mix,
        offset=index * len(mix) // clients, warm_up=workload.warm_up, phases=phases,
        log=log_dir / f"client-{index}.log"), start, results)) for index in range(clients)]
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
                raise ClientsFailed(f"a client did not start (logs in {log_dir}):\n{failure}") from None
            if number == 0:
                report["clients_startup_seconds"] = round(time.perf_counter() - spawned, 1)
                print(f"{clients} client(s) loaded and warmed up in {report['clients_startup_seconds']:.0f} s",
                      file=sys.stderr)
            rss_start = rss_mib(server_pids)
            groups = {"server": server_pids} | {f"client-{index}": [process.pid] for index, process in
                                                enumerate(processes[:phase.clients]) if process.pid is not None}
            with PeakMemory({f"server-{node}": pid for node, pid in enumerate(server_pids)}) as memory:
                with MemoryTimeline(groups, memory_interval) as timeline:
                    for _ in tqdm(range(round(phase.seconds)), desc=f"{phase.name}: {phase.clients} client(s)",
                                  unit="s"):
                        time.sleep(1)
                # A request under way when the time is up still ends (a yes/no decision may take a minute).
                collected = [results.get(timeout=phase.seconds + 600) for _ in range(phase.clients)]
            server = {"start": rss_start, "end": rss_mib(server_pids), "peak_sampled": round(
                sum(memory.peaks.values()) / 2**20, 1) if memory.peaks else None}
            report[phase.name] = summarise(collected, phase.threads) | {
                "requested_seconds": phase.seconds, "server_rss_mib": server, "memory": timeline.report()}
    finally:
        start.abort()  # clients still waiting for a phase (the parent failed) end instead of hanging
        for process in processes:
            process.join(timeout=60)
            if process.is_alive():
                process.kill()
    return report


@dataclasses.dataclass(frozen=True)
class Served:
    """A running server for one measurement: the parent's connection (to ingest), what the clients connect to
    (one entry per node, given out round-robin) and every weaviate-server process (whose memory is sampled)."""

    store: Store
    targets: list[Config]
    pids: list[int]
    description: str


@contextlib.contextmanager
def serve(config: Config, nodes: int = 0) -> Iterator[Served]:
    """The embedded server of ``config`` (``nodes`` 0; its url must be unset), or a LocalCluster of ``nodes``
    nodes in ``<home>/concurrency-cluster-<nodes>`` with replication factor ``nodes``; stopped on exit."""
    def log(line: str) -> None:
        print(line, file=sys.stderr)

    if nodes < 1:
        with Store.open(config, log=log) as store:
            server = store.server
            if server is None or server.pid is None:
                raise ValueError("the config names a Weaviate URL: unset it, the benchmark starts its own server")
            target = config.replace(weaviate={"url": server.url, "api_key": server.api_key,
                                              "grpc_port": server.grpc_port})
            yield Served(store, [target], [server.pid], "embedded server (1 node)")
        return
    binary = find_binary(config)
    if binary is None:
        raise FileNotFoundError("no weaviate-server binary for the cluster: run `make setup` or set "
                                "MEDRAG_WEAVIATE_BIN")
    with LocalCluster(binary.path, Path(config.home) / f"concurrency-cluster-{nodes}", size=nodes) as cluster:
        targets = [cluster.config(config, node) for node in range(nodes)]
        slow = targets[0].replace(weaviate={"timeout": max(config.weaviate.timeout, SCHEMA_TIMEOUT_S)})
        with Store.open(slow, log=log) as store:
            yield Served(store, targets, [node.pid for node in cluster.nodes if node.pid is not None],
                         f"LocalCluster of {nodes} nodes, replication factor {nodes}")


def measure(config: Config, workload: Workload, phases: list[Phase], *, nodes: int = 0,
            startup_timeout: float = 900.0, memory_interval: float = 2.0) -> dict[str, Any]:
    """Serve (:func:`serve`), ingest what the workload needs, run the phases: what the CLI and
    ``reliability/load.py`` share. Client logs go to ``<home>/concurrency-logs/``."""
    with serve(config, nodes) as served:
        workload.ingest(served.store)
        return {"server": {"kind": served.description, "processes": len(served.pids)}} | run_phases(
            workload, served.targets, phases, served.pids, Path(config.home) / "concurrency-logs",
            startup_timeout=startup_timeout, memory_interval=memory_interval)


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
    parser.add_argument("--cluster", type=int, default=0, metavar="N",
                        help="run against a local cluster of N nodes, replication factor N (default: the embedded "
                             "server); client i connects to node i mod N")
    parser.add_argument("--memory-interval", type=float, default=2.0,
                        help="seconds between samples of the server's and the clients' resident memory")
    parser.add_argument("--startup-timeout", type=float, default=900.0,
                        help="seconds all clients may take to load their models and warm up")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/concurrency.json"),
                        help="the JSON report; the memory plot goes beside it as .png")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0 or args.baseline_seconds <= 0 or args.memory_interval <= 0:
        parser.error("--clients must be >= 1 and --seconds, --baseline-seconds, --memory-interval > 0")
    if args.cluster < 0:
        parser.error("--cluster must be 0 (the embedded server) or a node count")

    config, questions_file, metadata = benchmark_config(args)
    for path, option in ((questions_file, "--questions"), (metadata, "--metadata"), *(
            (report, "--reports") for report in args.reports)):
        if not path.exists():
            parser.error(f"{path} not found; pass {option} or set MEDRAG_DATA_DIR to the shared data folder")
    try:
        workload = Workload.from_files(questions_file, metadata, args.tenant, question_count=args.question_count,
                                       case_count=args.case_count, reports=args.reports)
    except ValueError as error:
        parser.error(str(error))
    report: dict[str, Any] = {
        "benchmark": "concurrency", "date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": machine(),
        "inputs": {"questions": str(questions_file), "metadata": str(metadata),
                   "reports": [str(path) for path in args.reports]},
        "answer_mode": "extractive", "mix": {"text": len(workload.questions) - 1, "image": len(workload.cases) - 1},
    }
    try:
        report |= measure(config, workload, [Phase("baseline_one_client", 1, args.baseline_seconds),
                                             Phase("concurrent", args.clients, args.seconds)],
                          nodes=args.cluster, startup_timeout=args.startup_timeout,
                          memory_interval=args.memory_interval)
    except ClientsFailed as error:
        raise SystemExit(str(error)) from None
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
    plot_memory({phase: report[phase]["memory"] for phase in ("baseline_one_client", "concurrent")},
                args.out.with_suffix(".png"), f"Resident memory, {report['server']['kind']}")
    print(json.dumps({"ratios": report["ratios"]} | {
        phase: {key: report[phase][key] for key in ("clients", "requests", "throughput_rps", "latency", "errors",
                                                    "server_rss_mib")}
        | {"memory_flat": {name: figure["flat"] for name, figure in report[phase]["memory"]["flatness"].items()}}
        for phase in ("baseline_one_client", "concurrent")}, indent=2))
    return report


if __name__ == "__main__":
    main()
