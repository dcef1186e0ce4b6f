"""Ingest throughput on this machine: abstracts/s, reports/s, images/s, written as JSON.

Baseline, measured in the same run: the text encoder alone on the same texts. The ratio
``pipeline rate / encoder rate`` is the share of time the pipeline spends outside the model
(parsing, de-identification, hashing, Weaviate writes); it is comparable across machines.

Memory, per source: the peak resident memory of this (ingesting) process and of the weaviate-server process
while that source is ingested, sampled every 50 ms by a thread (psutil), so a site can size the ingest machine
and the server for its largest source; the process's lifetime peak from ``getrusage`` (exact, not sampled)
is reported beside them, as a check that sampling missed no spike higher than the sampled peaks.

    python benchmarks/ingest_throughput.py --data-dir ../shared/data --out benchmarks/results/ingest.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

import psutil

from knowledge_sources.pubmed import load_pubmed
from knowledge_sources.records import SourceRecord
from medrag.config import load_config
from medrag.encode.text import TextEncoder
from medrag.ingest.pipeline import Ingestor
from medrag.sources.prepare import prepare_article
from medrag.store import Store


class Sampler:
    """Calls ``_sample`` on entering the block, every ``interval`` seconds from a daemon thread, and on leaving it: the
    loop both memory samplers (:class:`PeakMemory`, ``concurrency.MemoryTimeline``) share. ``began`` is the
    monotonic time the block was entered."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.began = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_until_stopped, daemon=True)

    def _sample(self) -> None:
        raise NotImplementedError

    def _sample_until_stopped(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> Self:
        self.began = time.monotonic()
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


class PeakMemory(Sampler):
    """Peak resident memory (bytes) of named processes while the block runs, sampled by a daemon thread.

    Sampling, not the kernel's VmHWM, because VmHWM is a lifetime peak that cannot be read per phase; a spike
    shorter than ``interval`` can be missed. A process that is gone (or None) is left out of ``peaks``.
    """

    def __init__(self, pids: Mapping[str, int | None], interval: float = 0.05) -> None:
        super().__init__(interval)
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items() if pid is not None}
        self.peaks: dict[str, int] = {}

    def _sample(self) -> None:
        for name, process in list(self._processes.items()):
            try:
                self.peaks[name] = max(self.peaks.get(name, 0), process.memory_info().rss)
            except psutil.NoSuchProcess:
                del self._processes[name]


def lifetime_peak_rss_bytes() -> int:
    """This process's peak resident memory since it started (``ru_maxrss`` is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _encoder_rate(encoder: TextEncoder, texts: list[str]) -> float:
    started = time.perf_counter()
    encoder.encode(texts)
    return len(texts) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="shared data folder (default: config data_dir)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/ingest.json"))
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as home:
        config = load_config().replace(home=Path(home), weaviate={"url": None})
        data = args.data_dir or Path(config.data_dir)
        sources = {
            "abstracts": ("pubmed", [data / "pubmed"]),
            "reports": ("reports", [data / "reports" / "iu-openi" / "NLMCXR_reports.tgz"]),
            "images": ("images", [data / "cxr" / "covid" / "metadata.csv"]),
        }
        encoder = TextEncoder(config.text_model)
        sample = [prepare_article(item).text for item in load_pubmed([data / "pubmed"])
                  if isinstance(item, SourceRecord)][:500]
        baseline = _encoder_rate(encoder, sample)
        results: dict[str, dict] = {}
        with Store.open(config) as store:
            ingestor = Ingestor(config, store, text_encoder=encoder, progress=True)
            processes = {"ingest_process": os.getpid(), "weaviate_server": store.server.pid if store.server else None}
            for name, (method, paths) in sources.items():
                started = time.perf_counter()
                with PeakMemory(processes) as memory:
                    summary = getattr(ingestor, method)(paths)
                seconds = time.perf_counter() - started
                results[name] = {
                    "read": summary.read, "written": summary.written, "skipped": len(summary.skipped),
                    "failed": len(summary.failed), "seconds": round(seconds, 2),
                    "per_second": round(summary.read / seconds, 2),
                    "peak_rss_mib": {process: round(peak / 2**20, 1) for process, peak in memory.peaks.items()},
                }
                started = time.perf_counter()
                rerun = getattr(ingestor, method)(paths)
                results[name]["rerun_seconds"] = round(time.perf_counter() - started, 2)
                results[name]["rerun_added"] = rerun.added
    results["abstracts"]["ratio_to_encoder_only"] = round(results["abstracts"]["per_second"] / baseline, 3)
    report = {
        "benchmark": "ingest_throughput",
        "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version()},
        "baseline_encoder_abstracts_per_second": round(baseline, 2),
        "ingest_process_lifetime_peak_rss_mib": round(lifetime_peak_rss_bytes() / 2**20, 1),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
