"""Ingest throughput on this machine: abstracts/s, reports/s, images/s, written as JSON.

Baseline, measured in the same run: the text encoder alone on the same texts. The ratio
``pipeline rate / encoder rate`` is the share of time the pipeline spends outside the model
(parsing, de-identification, hashing, Weaviate writes); it is comparable across machines.

    python benchmarks/ingest_throughput.py --data-dir ../shared/data --out benchmarks/results/ingest.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

from knowledge_sources.pubmed import load_pubmed
from knowledge_sources.records import SourceRecord
from medrag.config import load_config
from medrag.encode.text import TextEncoder
from medrag.ingest.pipeline import Ingestor
from medrag.sources.prepare import prepare_article
from medrag.store import Store


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
            for name, (method, paths) in sources.items():
                started = time.perf_counter()
                summary = getattr(ingestor, method)(paths)
                seconds = time.perf_counter() - started
                results[name] = {
                    "read": summary.read, "written": summary.written, "skipped": len(summary.skipped),
                    "failed": len(summary.failed), "seconds": round(seconds, 2),
                    "per_second": round(summary.read / seconds, 2),
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
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
