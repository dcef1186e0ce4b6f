"""benchmarks/concurrency.py: its pure parts on hand-made records, and one tiny run against a real server."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import time
from pathlib import Path
from types import ModuleType

import pytest

from medrag.store.binary import WeaviateBinary

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def concurrency(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """The script imported by name from the benchmarks folder: it imports its sibling scripts, and the spawned
    clients import it by name too (they inherit sys.path); by path it would not be importable in them."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    return importlib.import_module("concurrency")


def test_mix_alternates_kinds_and_keeps_every_query(concurrency: ModuleType) -> None:
    questions = [{"question": f"q{i}"} for i in range(3)]
    cases = [{"note": "n", "image": Path(f"{i}.jpg")} for i in range(5)]
    mix = concurrency.interleave(questions, cases)
    assert [concurrency.kind_of(query) for query in mix] == ["text", "image"] * 3 + ["image"] * 2
    assert len(mix) == 8


def test_error_messages_never_carry_the_query_text(concurrency: ModuleType) -> None:
    query = {"note": "Jane Roe, 71, fever since Monday", "image": Path("x.jpg")}
    described = concurrency.describe_error(ValueError(f"cannot route {query['note']!r}"), query)
    assert described == "ValueError: cannot route '<query text>'"


def test_summary_counts_kinds_errors_and_throughput(concurrency: ModuleType) -> None:
    def record(kind: str, ms: float, error: str | None = None) -> dict:
        return {"kind": kind, "ms": ms, "decide_ms": 0.0, "error": error}

    clients = [{"client": 1, "began": 10.0, "ended": 14.0, "peak_rss_bytes": 2**20, "uss_bytes": 2**20, "cache": {},
                "records": [record("text", 100), record("image", 300), record("text", 5, "TimeoutError: slow")]},
               {"client": 0, "began": 10.5, "ended": 12.0, "peak_rss_bytes": 2**20, "uss_bytes": 2**20, "cache": {},
                "records": [record("text", 200)]}]
    summary = concurrency.summarise(clients, threads=1)
    assert summary["seconds"] == 4.0 and summary["requests"] == 3 and summary["throughput_rps"] == 0.75
    assert summary["errors"] == 1 and summary["first_errors"] == ["TimeoutError: slow"]
    assert summary["by_kind"]["text"]["requests"] == 2 and summary["by_kind"]["image"]["p50_ms"] == 300
    assert summary["latency"]["p50_ms"] == 200 and summary["latency"]["p99_ms"] >= summary["latency"]["p95_ms"]
    assert [c["client"] for c in summary["per_client"]] == [0, 1]
    assert summary["per_client"][1] | {"text": 2, "image": 1, "errors": 1} == summary["per_client"][1]


def test_memory_timeline_samples_running_processes_and_marks_gone_ones(concurrency: ModuleType) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    with concurrency.MemoryTimeline({"me": [os.getpid()], "gone": [finished.pid]}, interval=0.05) as timeline:
        time.sleep(0.5)
    times, rss = timeline.series("me")
    assert len(times) >= 4 and times == sorted(times) and times[0] == 0.0
    assert all(value > 10 for value in rss), "this Python process holds more than 10 MiB"
    assert timeline.series("gone") == ([], []) and all(sample["gone"] is None for sample in timeline.samples)
    assert timeline.report()["flatness"]["gone"]["flat"] is None


def test_rss_of_a_group_is_the_sum_of_its_processes(concurrency: ModuleType) -> None:
    alone = concurrency.rss_mib([os.getpid()])
    assert concurrency.rss_mib([os.getpid(), os.getpid()]) == pytest.approx(2 * alone, rel=0.05)
    assert concurrency.rss_mib([]) is None


def test_tiny_run_end_to_end(concurrency: ModuleType, weaviate_binary: WeaviateBinary, data_dir: Path,
                             tmp_path: Path) -> None:
    """2 clients for a few seconds on 4 real questions and 4 demo cases, on a server the benchmark starts (the
    ``weaviate_binary`` fixture skips without one): both kinds asked, no errors, the JSON written."""
    from knowledge_sources import DEMO_DIR

    # Real abstracts and questions, the "?" cut: searched the same, but no yes / no decision is read, so no client
    # loads the reader (this test is about the benchmark's plumbing; the decision has its own tests).
    pubmedqa = json.loads((data_dir / "pubmed" / "pubmedqa_pqal_dev.json").read_text())
    questions = tmp_path / "qa.json"
    questions.write_text(json.dumps({pmid: entry | {"QUESTION": entry["QUESTION"].rstrip("?")}
                                     for pmid, entry in list(pubmedqa.items())[:4]}))
    out = tmp_path / "concurrency.json"
    started = time.monotonic()
    report = concurrency.main([
        "--home", str(tmp_path / "home"), "--questions", str(questions),
        "--metadata", str(DEMO_DIR / "covid" / "metadata.csv"), "--case-count", "4", "--clients", "2",
        "--seconds", "4", "--baseline-seconds", "3", "--tenant", "bench", "--out", str(out)])
    elapsed = time.monotonic() - started
    assert json.loads(out.read_text()) == report
    for phase, clients in (("baseline_one_client", 1), ("concurrent", 2)):
        result = report[phase]
        assert result["clients"] == clients and len(result["per_client"]) == clients
        assert result["requests"] > 0 and result["errors"] == 0, result["first_errors"]
        assert result["latency"]["p95_ms"] >= result["latency"]["p50_ms"] > 0
        assert result["server_rss_mib"]["start"] > 0 and result["server_rss_mib"]["end"] > 0
        memory = result["memory"]
        assert set(memory["flatness"]) == {"server", *(f"client-{index}" for index in range(clients))}
        assert len(memory["samples"]) >= 3 and all(sample["server"] > 0 for sample in memory["samples"])
    asked = {kind for phase in ("baseline_one_client", "concurrent") for client in report[phase]["per_client"]
             for kind in ("text", "image") if client[kind]}
    assert asked == {"text", "image"}
    assert report["mix"] == {"text": 3, "image": 3}
    assert report["ratios"]["throughput_n_over_1"] > 0 and report["ratios"]["p95_n_over_1"] > 0
    assert {"machine", "inputs", "ratios"} <= set(report)
    assert report["server"] == {"kind": "embedded server (1 node)", "processes": 1}
    assert out.with_suffix(".png").stat().st_size > 10_000, "the memory plot beside the JSON"
    assert elapsed < 180, f"the tiny run took {elapsed:.0f} s"
