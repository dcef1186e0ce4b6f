"""Load area: N client processes asking mixed text and image questions for 10 minutes, against the embedded server
and against a 3-node cluster: throughput, p95, errors (must be 0) and whether resident memory stayed flat.

What a hospital's review asks before several workers share one deployment for a working day: does anything fail
under sustained load, and does any process grow. The machinery is ``benchmarks/concurrency.py``'s (one spawned
process per client, each with its own Assistant and models, released together by a barrier, asking a mix that
alternates PubMedQA questions and note + radiograph cases through ``Assistant.ask`` in extractive mode), run as one
phase per target; the server's resident memory (every weaviate-server process, summed) and each client's are
sampled every few seconds, and ``concurrency.flatness`` judges each series: growth between the early window
(after a 10% warm-up) and the late window under 10%, and the least-squares trend's 95% lower bound adding under 10%
over the run. The memory-over-time plot is written to ``<out_dir>/load.png``.

Full run: ``MEDRAG_LOAD_CLIENTS`` clients (default 4, for the 2-core test VM: 8 clients there already wait
minutes per text question, benchmarks/README.md) for ``MEDRAG_LOAD_SECONDS`` (default 600) against the embedded
server, then the same against a LocalCluster of ``MEDRAG_LOAD_NODES`` nodes (default 3, replication factor 3;
client i connects to node i mod 3); 200 questions and 200 cases. Quick run (tests): 2 clients for 30 s against the
embedded server, 20 questions and the 8 demo cases. The environment settings change the full run only, so
``make test`` stays quick.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType
from typing import Any

from knowledge_sources import DEMO_DIR
from medrag.config import Config
from reliability import register_suite

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
TENANT = "load"


def benchmark(name: str) -> ModuleType:
    """A script of ``benchmarks/`` imported by its own name, as its tests import it: the scripts import their
    siblings by name, and the spawned client processes find ``concurrency.run_client`` by that name (they inherit
    ``sys.path``). ``benchmarks/`` is a folder of scripts, not a package; nothing in ``medrag/`` comes here."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)


@dataclasses.dataclass(frozen=True)
class LoadPlan:
    """How many clients ask for how long, against which servers (0 = the embedded one, N = an N-node cluster)."""

    clients: int
    seconds: float
    targets: tuple[int, ...]
    questions: int
    cases: int | None
    """None: every case of the demo metadata (the quick run's 8)."""
    memory_interval: float

    @classmethod
    def chosen(cls, quick: bool, environ: dict[str, str] | None = None) -> LoadPlan:
        """The quick plan, or the full one with the ``MEDRAG_LOAD_*`` environment settings."""
        if quick:
            return cls(clients=2, seconds=30.0, targets=(0,), questions=20, cases=None, memory_interval=1.0)
        environ = dict(os.environ if environ is None else environ)
        clients = int(environ.get("MEDRAG_LOAD_CLIENTS", "4"))
        seconds = float(environ.get("MEDRAG_LOAD_SECONDS", "600"))
        nodes = int(environ.get("MEDRAG_LOAD_NODES", "3"))
        if clients < 1 or seconds <= 0 or nodes < 1:
            raise ValueError(f"MEDRAG_LOAD_CLIENTS ({clients}) and MEDRAG_LOAD_NODES ({nodes}) must be >= 1 and "
                             f"MEDRAG_LOAD_SECONDS ({seconds}) > 0")
        return cls(clients=clients, seconds=seconds, targets=(0, nodes), questions=200, cases=200,
                   memory_interval=5.0)


def target_name(nodes: int) -> str:
    return "embedded" if nodes == 0 else f"cluster of {nodes}"


def workload(config: Config, plan: LoadPlan, folder: Path) -> Any:
    """The questions (a file of the first ``plan.questions`` PubMedQA entries, so that only their abstracts are
    ingested) and the cases (the data dir's covid metadata in the full run, the demo's in the quick one)."""
    latency = benchmark("query_latency")
    data = Path(config.data_dir)
    pubmedqa = json.loads((data / latency.QUESTIONS).read_text())
    questions = folder / "questions.json"
    questions.write_text(json.dumps(dict(list(pubmedqa.items())[:plan.questions])))
    metadata = DEMO_DIR / "covid" / "metadata.csv" if plan.cases is None else data / latency.METADATA
    return benchmark("concurrency").Workload.from_files(questions, metadata, TENANT, case_count=plan.cases)


def headline(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per target: clients held for how long, throughput, p95, errors, and the memory growth of the server and of
    the client that grew most."""
    lines: dict[str, Any] = {}
    for name, result in results.items():
        load = result["load"]
        judged = load["memory"]["flatness"]
        clients = [figure for key, figure in judged.items() if key != "server"]
        worst = max(clients, key=lambda figure: figure.get("growth", float("inf")))
        lines[f"{name}: clients held"] = f"{load['clients']} for {load['seconds'] / 60:.1f} min"
        lines[f"{name}: throughput req/s"] = load["throughput_rps"]
        lines[f"{name}: p95 s"] = round(load["latency"].get("p95_ms", float("nan")) / 1000, 2)
        lines[f"{name}: errors"] = load["errors"]
        lines[f"{name}: server memory"] = describe(judged["server"])
        lines[f"{name}: client memory (largest growth)"] = describe(worst)
    return lines


def describe(figure: dict[str, Any]) -> str:
    """One flatness figure in words: early and late medians, growth, slope with its interval, and the verdict."""
    if figure.get("flat") is None:
        return f"not judged ({figure.get('why', 'no samples')})"
    low, high = figure["slope_95ci_mib_per_min"]
    return (f"{figure['early_median_mib']:.0f} -> {figure['late_median_mib']:.0f} MiB ({figure['growth']:+.1%}), "
            f"slope {figure['slope_mib_per_min']:+.2f} MiB/min (95% {low:+.2f} to {high:+.2f}): "
            f"{'flat' if figure['flat'] else 'NOT flat'}")


def passed(results: dict[str, dict[str, Any]]) -> bool:
    """No errors, some requests answered, and every judged memory series (server and each client) flat."""
    return all(result["load"]["errors"] == 0 and result["load"]["requests"] > 0
               and all(figure.get("flat") is True for figure in result["load"]["memory"]["flatness"].values())
               for result in results.values())


def run(config: Config, out_dir: Path, quick: bool) -> dict[str, Any]:
    concurrency = benchmark("concurrency")
    plan = LoadPlan.chosen(quick)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="medrag-load-") as folder:
        home = config.replace(home=Path(folder), weaviate={"url": None, "data_dir": None, "port": None})
        asked = workload(config, plan, Path(folder))
        for nodes in plan.targets:
            phase = concurrency.Phase("load", plan.clients, plan.seconds)
            # A client that fails to start raises ClientsFailed with its traceback: the runner reports it.
            results[target_name(nodes)] = concurrency.measure(home, asked, [phase], nodes=nodes,
                                                              memory_interval=plan.memory_interval)
    plot = concurrency.plot_memory(
        {f"{name}, {result['load']['clients']} clients": result["load"]["memory"] for name, result in results.items()},
        out_dir / "load.png", f"Resident memory under load ({'quick' if quick else 'full'} run)")
    return {"headline": headline(results), "passed": passed(results), "plan": dataclasses.asdict(plan),
            "mix": {"text": len(asked.questions) - 1, "image": len(asked.cases) - 1}, "plot": str(plot),
            "targets": results}


register_suite("load", run)
