"""Weaviate at 100k and 1M objects: import rate, memory, disk, HNSW recall@10 and latency, BM25 latency.

Each object looks like one of our PubMed articles: a ``text`` property of 150-250 words that BM25 searches and
two named vectors we provide, ``text`` (384-d, the sentence encoder's) and ``joint`` (256-d, the image-text
space). For every size the benchmark runs the plain HNSW index and then, on a fresh server, the same data with a
quantizer (8-bit rotational quantization by default), and measures: the import (weaviate-client v4 fixed-size
batches; failed objects counted, they must be 0), the server's resident memory (VmRSS and its peak VmHWM) empty,
after the import and after the queries, its data directory on disk, near-vector latency p50/p95 and recall@10
against exact numpy search at several ``ef``, and BM25 latency p50/p95. Baselines, in the same run: exact
brute-force numpy search (recall 1.0 by definition) and its time per query. From the measured bytes per object
it sizes a cluster for all of PubMed (~37M abstracts).

    python benchmarks/scale.py --sizes "100000 1000000" --out benchmarks/results/scale.json
    python benchmarks/scale.py --sizes 5000 --out /tmp/scale-smoke.json          # smoke run, under a minute

Each run starts its own server (``EmbeddedServer``) in a fresh folder under ``--data-root``, stops it at the end,
also on error, and deletes the folder unless ``--keep-data``. ``--append`` merges the runs into an existing
``--out`` (one size per command when a machine is shared), provided seed and data settings match.

Why synthetic vectors, and why this mixture. Encoding 1M abstracts takes days on 2 CPU cores, so the vectors are
drawn, from a fixed seed, from a Gaussian mixture shaped like real sentence embeddings. Uniform random unit
vectors would mislead: in 384 dimensions all their pairwise distances concentrate around the same value, so the
"nearest" neighbours are barely nearer than the rest and HNSW looks unrealistically bad (and brute force equally
meaningless); tight, well separated clusters would make it look unrealistically good. Real embeddings sit in
between: topics (clusters), a shared mean direction (sentence encoders are anisotropic: random pairs have
cosine > 0) and a decaying principal spectrum (a low effective dimension). So: ``clusters`` unit-norm centres
with log-normal weights (topics of unequal size), each centre = ``anisotropy`` x a shared direction + noise,
points = centre + ``spread`` x noise, then normalised, where all noise has variance ~ j^-``decay`` along the j-th
axis of one random rotation. The defaults were fitted to all-MiniLM-L6-v2 (``medrag.encode.text.TextEncoder``)
on the 500 PubMedQA abstracts: real mean pair cosine 0.140, mean nearest-neighbour cosine 0.546, participation
ratio (effective dimension) 66.8; the report puts the mixture's own figures on 500 draws beside them. The joint
vectors use the same mixture in 256-d with the same topic per object (not fitted: the joint tower is ours and
small). Query vectors are held-out draws from the same mixture (another random stream), never stored.

Why this text. Each object's text is sentences sampled at random, with replacement, from the real PubMedQA
abstracts (CONTEXTS and LONG_ANSWER of ``pubmedqa_pqal_dev.json``, read at run time, never copied here) until
it reaches a word count drawn uniformly from 150-250; BM25 queries are the real PubMedQA questions. The
vocabulary is that of 500 abstracts (~9k words) instead of PubMed's millions, so posting lists are longer than
real ones: BM25 latency here errs on the slow side.

Import time is the wall time of the batch loop, the texts made on the fly included; the CPU seconds of the server
and of this process during it are reported, so a client-bound import shows (on 2 cores it is the server's).

Memory: VmRSS counts anonymous memory (Go heap, HNSW graph, cached vectors, memtables) and the touched pages of
memory-mapped LSM segments (RssAnon and RssFile are both in the report); the Go runtime keeps garbage until its
next collection, as a server without GOMEMLIMIT does in production. Bytes per object = (RSS after import - RSS of
the empty server) / N; the PubMed cluster table scales that linearly from the largest size measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import re
import shutil
import statistics
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import weaviate
from tqdm import tqdm
from weaviate.classes.config import Configure, DataType, Property, Reconfigure, Tokenization
from weaviate.classes.init import AdditionalConfig, Auth, Timeout
from weaviate.collections import Collection

from medrag.config import load_config
from medrag.reporting import pyplot, save_figure
from medrag.store.binary import find_binary
from medrag.store.server import EmbeddedServer

COLLECTION = "ScaleBench"
DIMS = {"text": 384, "joint": 256}
CHUNK = 16384
"""Objects per generation chunk. Fixed, so object i gets the same vectors and text whatever the size."""
STORE_STREAM, QUERY_STREAM, TEXT_STREAM, SAMPLE_STREAM = 0, 1, 2, 3
K = 10
PUBMED_ABSTRACTS = 37_000_000
REAL_MINILM_PUBMEDQA = {"mean_pair_cosine": 0.140, "mean_nn1_cosine": 0.546, "participation_ratio": 66.8}
"""all-MiniLM-L6-v2 on the 500 PubMedQA dev abstracts (CONTEXTS joined), measured once: what the mixture mimics."""
UUID_MULTIPLIER = 0x9E3779B97F4A7C15F39CC0605CEDC835
"""Odd, so multiplication modulo 2**128 is a bijection: object ids look random to the LSM store, as the
product's uuid5 ids do, yet map back to the row of the vector arrays without a lookup table."""
UUID_INVERSE = pow(UUID_MULTIPLIER, -1, 1 << 128)
QUANTIZERS = ("rq", "pq", "bq", "sq", "none")


@dataclasses.dataclass(frozen=True)
class MixtureSpec:
    """The Gaussian mixture of the synthetic vectors (defaults fitted to MiniLM on PubMed abstracts)."""

    clusters: int = 2000
    anisotropy: float = 0.5
    """Weight of the direction all centres share (sets the mean pair cosine)."""
    decay: float = 0.8
    """Noise variance along the j-th axis ~ j**-decay (sets the effective dimension)."""
    spread: float = 0.6
    """Within-topic noise norm against the unit centre: same-topic pairs have cosine ~ 1 / (1 + spread**2)."""


class VectorMixture:
    """Deterministic draws (seed, stream, chunk) of unit vectors for every named vector in ``dims``."""

    def __init__(self, dims: Mapping[str, int], spec: MixtureSpec, seed: int) -> None:
        self.dims, self.spec, self.seed = dict(dims), spec, seed
        rng = np.random.default_rng([seed, 99])
        weights = rng.lognormal(0.0, 1.0, spec.clusters)
        self.weights = weights / weights.sum()
        self._space: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        for name, dim in self.dims.items():
            rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
            scale = np.arange(1, dim + 1, dtype=np.float64) ** -spec.decay
            scale = np.sqrt(scale / scale.sum())  # noise of unit expected norm
            shared = rng.standard_normal(dim)
            centres = spec.anisotropy * shared / np.linalg.norm(shared) + (
                rng.standard_normal((spec.clusters, dim)) * scale) @ rotation
            centres /= np.linalg.norm(centres, axis=1, keepdims=True)
            self._space[name] = (rotation.astype(np.float32), scale.astype(np.float32), centres.astype(np.float32))

    def draw(self, n: int, stream: int) -> dict[str, np.ndarray]:
        """``{name: (n, dim) float32}``, unit rows; row i depends only on (seed, stream, i)."""
        out = {name: np.empty((n, dim), dtype=np.float32) for name, dim in self.dims.items()}
        for index, start in enumerate(range(0, n, CHUNK)):
            count = min(CHUNK, n - start)
            rng = np.random.default_rng([self.seed, stream, index])  # whole chunks: a short last one draws alike
            topics = rng.choice(self.spec.clusters, size=CHUNK, p=self.weights)[:count]
            for name, (rotation, scale, centres) in self._space.items():
                noise = (rng.standard_normal((CHUNK, len(scale)), dtype=np.float32)[:count] * scale) @ rotation
                rows = centres[topics] + self.spec.spread * noise
                out[name][start:start + count] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
        return out


def vector_statistics(vectors: np.ndarray) -> dict[str, float]:
    """Mean pair cosine, mean nearest-neighbour cosine and participation ratio of unit rows (small samples)."""
    similarity = vectors @ vectors.T
    upper = similarity[np.triu_indices(len(vectors), 1)]
    np.fill_diagonal(similarity, -np.inf)
    variances = np.linalg.svd(vectors - vectors.mean(0), compute_uv=False) ** 2
    return {"mean_pair_cosine": round(float(upper.mean()), 3),
            "mean_nn1_cosine": round(float(similarity.max(1).mean()), 3),
            "participation_ratio": round(float(variances.sum() ** 2 / (variances ** 2).sum()), 1)}


def exact_top_k(base: np.ndarray, queries: np.ndarray, k: int = K, block: int = 131072) -> np.ndarray:
    """Row indices of the k largest dot products per query, best first (cosine, as rows are unit vectors)."""
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_rows = np.empty((len(queries), 0), dtype=np.int64)
    for start in range(0, len(base), block):
        scores = np.concatenate([best_scores, queries @ base[start:start + block].T], axis=1)
        rows = np.concatenate([best_rows, np.broadcast_to(
            np.arange(start, min(start + block, len(base))), (len(queries), min(block, len(base) - start)))], axis=1)
        keep = np.argpartition(-scores, min(k, scores.shape[1]) - 1, axis=1)[:, :k]
        best_scores, best_rows = np.take_along_axis(scores, keep, 1), np.take_along_axis(rows, keep, 1)
    order = np.argsort(-best_scores, axis=1, kind="stable")
    return np.take_along_axis(best_rows, order, 1)


def recall_at_k(found: Sequence[Sequence[int]], exact: np.ndarray, k: int = K) -> float:
    """Mean share of the exact top k that the search returned in its top k."""
    if len(found) != len(exact):
        raise ValueError(f"{len(found)} result lists for {len(exact)} queries; pass one list per query")
    shares = [len(set(hits[:k]) & set(truth[:k].tolist())) / k for hits, truth in zip(found, exact, strict=True)]
    return float(np.mean(shares))


def object_uuid(row: int) -> uuid.UUID:
    return uuid.UUID(int=(row + 1) * UUID_MULTIPLIER % (1 << 128))


def object_row(object_id: uuid.UUID) -> int:
    return object_id.int * UUID_INVERSE % (1 << 128) - 1


def load_abstracts(path: Path) -> tuple[list[str], list[str]]:
    """(sentences of every abstract, questions) from PubMedQA's JSON keyed by PMID."""
    entries = json.loads(path.read_text())
    sentences = [sentence for entry in entries.values() for part in (*entry["CONTEXTS"], entry["LONG_ANSWER"])
                 for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z(])", part.strip()) if sentence]
    return sentences, [entry["QUESTION"] for entry in entries.values()]


class AbstractTexts:
    """Abstract-like texts: real sentences recombined until a word count drawn from ``words`` is reached."""

    def __init__(self, sentences: Sequence[str], seed: int, words: tuple[int, int] = (150, 250),
                 draws: int = 40) -> None:
        if not sentences:
            raise ValueError("no sentences to build texts from; check the PubMedQA file given with --qa")
        self.sentences = np.array(sentences, dtype=object)
        self.lengths = np.array([len(s.split()) for s in sentences])
        self.seed, self.words, self.draws = seed, words, draws

    def chunk(self, index: int, count: int) -> list[str]:
        """The ``count`` texts of generation chunk ``index`` (object ids ``index * CHUNK`` on)."""
        rng = np.random.default_rng([self.seed, TEXT_STREAM, index])  # whole chunks, as in VectorMixture.draw
        targets = rng.integers(self.words[0], self.words[1] + 1, size=CHUNK)[:count]
        picks = rng.integers(0, len(self.sentences), size=(CHUNK, self.draws))[:count]
        reached = self.lengths[picks].cumsum(axis=1) >= targets[:, None]
        ends = np.where(reached.any(axis=1), reached.argmax(axis=1) + 1, self.draws)
        return [" ".join(self.sentences[row[:end]]) for row, end in zip(picks, ends, strict=True)]

    def texts(self, n: int) -> Iterator[str]:
        for index, start in enumerate(range(0, n, CHUNK)):
            yield from self.chunk(index, min(CHUNK, n - start))


def percentiles(milliseconds: Sequence[float]) -> dict[str, float]:
    return {"p50_ms": round(float(np.percentile(milliseconds, 50)), 2),
            "p95_ms": round(float(np.percentile(milliseconds, 95)), 2),
            "mean_ms": round(statistics.fmean(milliseconds), 2)}


def process_memory(pid: int) -> dict[str, int]:
    """Resident memory of a process from /proc (bytes): VmRSS, its peak VmHWM, and the anon/file split."""
    fields = {"VmRSS": "rss_bytes", "VmHWM": "peak_rss_bytes", "RssAnon": "rss_anon_bytes",
              "RssFile": "rss_file_bytes"}
    memory = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in fields:
            memory[fields[name]] = int(value.split()[0]) * 1024
    return memory


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat), to tell client-bound from server-bound."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def directory_bytes(path: Path) -> int:
    """Bytes allocated on disk under ``path`` (sparse and preallocated files as they really are)."""
    return sum(entry.stat().st_blocks * 512 for entry in path.rglob("*") if entry.is_file())


def meminfo(field: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise KeyError(f"{field} not in /proc/meminfo; this benchmark reads Linux memory figures")


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"platform": platform.platform(), "cpu": cpu, "cores": os.cpu_count(),
            "ram_gib": round(meminfo("MemTotal") / 2**30, 1),
            "available_ram_gib_at_start": round(meminfo("MemAvailable") / 2**30, 1),
            "load_average_at_start": [round(load, 2) for load in os.getloadavg()],
            "python": platform.python_version()}


def cluster_estimate(ram_per_object: float, disk_per_object: float, *, objects: int = PUBMED_ABSTRACTS,
                     node_ram_gib: int = 64, usable_fraction: float = 0.7, replication: int = 1) -> dict[str, float]:
    """Nodes of ``node_ram_gib`` needed to hold ``objects`` (times ``replication``) at the measured cost per object.

    ``usable_fraction`` of a node's RAM goes to Weaviate's resident set; the rest is headroom for the Go garbage
    collector (a deployment sets GOMEMLIMIT below the node's memory) and for the page cache that BM25 and object
    reads live on. Per-object costs are taken as linear in N: the HNSW graph is (its upper layers add ~1/M).
    """
    ram_total = ram_per_object * objects * replication
    disk_total = disk_per_object * objects * replication
    nodes = max(replication, math.ceil(ram_total / (node_ram_gib * 2**30 * usable_fraction)))
    return {"replication": replication, "ram_total_gib": round(ram_total / 2**30, 1),
            "disk_total_gib": round(disk_total / 2**30, 1), "nodes": nodes,
            "disk_per_node_gib": round(disk_total / nodes / 2**30, 1)}


@dataclasses.dataclass(frozen=True)
class Settings:
    """How every run imports and searches (recorded in the report; --append needs them equal)."""

    efs: tuple[int, ...] = (64, 128, 256)
    queries: int = 200
    brute_force_queries: int = 20
    batch_size: int = 200
    concurrent_requests: int = 2
    quantizer: str = "rq"


def quantizer_config(name: str) -> Any:
    """The client's quantizer for ``name``; "none" explicitly skips any server-side default quantization."""
    quantizers = {"rq": lambda: Configure.VectorIndex.Quantizer.rq(bits=8),
                  "pq": Configure.VectorIndex.Quantizer.pq, "bq": Configure.VectorIndex.Quantizer.bq,
                  "sq": Configure.VectorIndex.Quantizer.sq, "none": Configure.VectorIndex.Quantizer.none}
    if name not in quantizers:
        raise ValueError(f"unknown quantizer {name!r}; choose one of {', '.join(QUANTIZERS)}")
    return quantizers[name]()


def _connect(server: EmbeddedServer) -> weaviate.WeaviateClient:
    return weaviate.connect_to_local(
        host="127.0.0.1", port=server.http_port, grpc_port=server.grpc_port,
        auth_credentials=Auth.api_key(server.api_key),
        additional_config=AdditionalConfig(timeout=Timeout(init=30, query=120, insert=600)))


def _create(client: weaviate.WeaviateClient, quantizer: str, ef: int) -> Collection:
    return client.collections.create(
        COLLECTION,
        properties=[Property(name="text", data_type=DataType.TEXT, tokenization=Tokenization.WORD),
                    Property(name="source_id", data_type=DataType.TEXT, tokenization=Tokenization.FIELD,
                             index_searchable=False)],
        vector_config=[Configure.Vectors.self_provided(
            name=name, quantizer=quantizer_config(quantizer),
            vector_index_config=Configure.VectorIndex.hnsw(ef=ef)) for name in DIMS])


def _set_ef(collection: Collection, ef: int, timeout: float = 30.0) -> None:
    """Change ef of both vector indexes and wait until the schema reports it."""
    collection.config.update(vector_config=[Reconfigure.Vectors.update(
        name=name, vector_index_config=Reconfigure.VectorIndex.hnsw(ef=ef)) for name in DIMS])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        config = collection.config.get().vector_config
        if all(config[name].vector_index_config.ef == ef for name in DIMS):
            return
        time.sleep(0.2)
    raise TimeoutError(f"ef={ef} not applied after {timeout:.0f} s; check the server log for a rejected update")


def _import(collection: Collection, vectors: Mapping[str, np.ndarray], texts: AbstractTexts, settings: Settings,
            server_pid: int) -> dict[str, Any]:
    n = len(next(iter(vectors.values())))
    server_cpu, client_cpu = cpu_seconds(server_pid), time.process_time()
    started = time.perf_counter()
    with (collection.batch.fixed_size(batch_size=settings.batch_size,
                                      concurrent_requests=settings.concurrent_requests) as batch,
          tqdm(total=n, desc=f"import {n:,}", unit="obj", miniters=settings.batch_size) as bar):
        for row, text in enumerate(texts.texts(n)):
            batch.add_object(properties={"text": text, "source_id": str(row)}, uuid=object_uuid(row),
                             vector={name: array[row] for name, array in vectors.items()})
            bar.update()
    seconds = time.perf_counter() - started
    server_cpu, client_cpu = cpu_seconds(server_pid) - server_cpu, time.process_time() - client_cpu
    failed = collection.batch.failed_objects
    count = collection.aggregate.over_all(total_count=True).total_count
    return {"seconds": round(seconds, 1), "objects_per_second": round(n / seconds, 1), "failed_objects": len(failed),
            "first_failure": failed[0].message if failed else None, "objects_in_collection": count,
            "server_cpu_seconds": round(server_cpu, 1), "client_cpu_seconds": round(client_cpu, 1)}


def _near_vector(collection: Collection, queries: np.ndarray, target: str) -> tuple[list[float], list[list[int]]]:
    latencies, found = [], []
    for query in queries:
        started = time.perf_counter()
        result = collection.query.near_vector(query.tolist(), target_vector=target, limit=K, return_properties=[])
        latencies.append((time.perf_counter() - started) * 1000)
        found.append([object_row(hit.uuid) for hit in result.objects])
    return latencies, found


def _bm25(collection: Collection, questions: Sequence[str]) -> list[float]:
    latencies = []
    for question in questions:
        started = time.perf_counter()
        collection.query.bm25(question, query_properties=["text"], limit=K, return_properties=[])
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def _memory_and_disk(server: EmbeddedServer, pid: int) -> dict[str, int]:
    return {**process_memory(pid), "disk_bytes": directory_bytes(server.data_dir)}


@dataclasses.dataclass(frozen=True)
class Workload:
    """One size's data: stored vectors and texts, held-out queries with their exact top 10, and warm-up queries
    (other held-out draws and questions, so the measured queries meet no cache they filled themselves)."""

    vectors: dict[str, np.ndarray]
    texts: AbstractTexts
    queries: dict[str, np.ndarray]
    exact: dict[str, np.ndarray]
    questions: list[str]
    warm_up_vectors: np.ndarray
    warm_up_questions: list[str]

    @property
    def size(self) -> int:
        return len(self.vectors["text"])


def make_workload(mixture: VectorMixture, texts: AbstractTexts, questions: Sequence[str], n: int, queries: int,
                  warm_up: int = 20) -> Workload:
    vectors = mixture.draw(n, STORE_STREAM)
    drawn = mixture.draw(warm_up + queries, QUERY_STREAM)
    measured = {name: array[warm_up:] for name, array in drawn.items()}
    return Workload(vectors, texts, measured, {name: exact_top_k(vectors[name], measured[name]) for name in DIMS},
                    list(questions[:queries]), drawn["text"][:warm_up], list(questions[queries:queries + warm_up]))


def _measure(server: EmbeddedServer, client: weaviate.WeaviateClient, workload: Workload, quantizer: str,
             settings: Settings) -> dict[str, Any]:
    pid = server.pid
    if pid is None:
        raise RuntimeError("the server is not running; start it first (use EmbeddedServer as a context manager)")
    n = workload.size
    empty = _memory_and_disk(server, pid)
    collection = _create(client, quantizer, settings.efs[0])
    index_config = collection.config.get().vector_config["text"].vector_index_config
    imported = _import(collection, workload.vectors, workload.texts, settings, pid)
    after_import = _memory_and_disk(server, pid)
    _near_vector(collection, workload.warm_up_vectors, "text")
    _bm25(collection, workload.warm_up_questions)
    searches = []
    for ef in settings.efs:
        _set_ef(collection, ef)
        for target in DIMS:
            latencies, found = _near_vector(collection, workload.queries[target], target)
            searches.append({"ef": ef, "target_vector": target, "queries": len(found),
                             "recall_at_10": round(recall_at_k(found, workload.exact[target]), 4),
                             **percentiles(latencies)})
    bm25 = percentiles(_bm25(collection, workload.questions))
    after_queries = _memory_and_disk(server, pid)
    return {
        "status": "ok", "objects": n, "quantizer": quantizer,
        "hnsw": {"ef_construction": index_config.ef_construction, "max_connections": index_config.max_connections,
                 "distance": str(index_config.distance_metric.value), "quantizer": type(index_config.quantizer).__name__
                 if index_config.quantizer else None},
        "import": imported,
        "memory": {"empty": empty, "after_import": after_import, "after_queries": after_queries,
                   "rss_bytes_per_object": round((after_import["rss_bytes"] - empty["rss_bytes"]) / n, 1),
                   "rss_anon_bytes_per_object": round((after_import["rss_anon_bytes"] - empty["rss_anon_bytes"]) / n,
                                                      1),
                   "disk_bytes_per_object": round((after_import["disk_bytes"] - empty["disk_bytes"]) / n, 1)},
        "near_vector": searches,
        "bm25": {"queries": len(workload.questions), **bm25},
    }


def benchmark_run(binary: Path, data_dir: Path, workload: Workload, quantizer: str, settings: Settings, *,
                  keep_data: bool = False) -> dict[str, Any]:
    """One size with one quantizer on a fresh server in ``data_dir``; a server that dies (out of memory) is
    recorded as a failed run, not raised."""
    shutil.rmtree(data_dir, ignore_errors=True)
    started = time.perf_counter()
    try:
        with EmbeddedServer(binary, data_dir) as server:
            version = None
            try:
                with _connect(server) as client:
                    version = client.get_meta().get("version")
                    run = _measure(server, client, workload, quantizer, settings)
            except Exception:
                reason = server.exit_reason()
                if reason is None:
                    raise
                run = {"status": "failed", "objects": workload.size, "quantizer": quantizer,
                       "reason": f"the server died mid-run (out of memory? see dmesg): {reason}"}
    finally:
        if not keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
    return {**run, "weaviate_version": version, "run_seconds": round(time.perf_counter() - started, 1)}


def brute_force_baseline(base: np.ndarray, queries: np.ndarray) -> dict[str, float]:
    """Exact numpy search, one query at a time as a server would answer it: milliseconds per query."""
    latencies = []
    for query in queries:
        started = time.perf_counter()
        exact_top_k(base, query[None, :])
        latencies.append((time.perf_counter() - started) * 1000)
    return {"recall_at_10": 1.0, **percentiles(latencies)}


def memory_needed(n: int, runs: Mapping[str, Mapping[str, Any]]) -> int:
    """Bytes this process and the server will hold for n objects: the vectors here, and the server's largest
    measured bytes per object plus 30% (only runs of 50k objects or more: below, fixed buffers dominate the
    figure), or 8 KiB per object before any."""
    measured = [run["memory"]["rss_bytes_per_object"] for run in runs.values()
                if run["status"] == "ok" and run["objects"] >= 50_000]
    return int(n * (sum(DIMS.values()) * 4 + (1.3 * max(measured) if measured else 8192)))


def projected_seconds(n: int, runs: Mapping[str, Mapping[str, Any]], quantizer: str) -> float | None:
    """Wall time of a run of n objects, from the completed runs with this quantizer (None if there are none).

    An HNSW insert walks a graph whose depth grows as log N, so the import time per object is modelled as
    a + b log N: fitted through the two largest runs, or, with one run, b = a / log N of that run (the time per
    object proportional to log N). Server start and queries scale from the largest run by the log ratio. The
    model is checked in the report: each run keeps its ``projected_seconds`` beside its ``run_seconds``.
    """
    measured = sorted((run for run in runs.values() if run["status"] == "ok" and run["quantizer"] == quantizer),
                      key=lambda run: run["objects"])
    if not measured:
        return None
    largest = measured[-1]
    per_object = largest["import"]["seconds"] / largest["objects"]
    slope = per_object / math.log(largest["objects"])
    if len(measured) > 1 and measured[-2]["objects"] < largest["objects"]:
        smaller = measured[-2]
        slope = max(0.0, (per_object - smaller["import"]["seconds"] / smaller["objects"]) /
                    math.log(largest["objects"] / smaller["objects"]))
    imported = n * (per_object + slope * math.log(n / largest["objects"]))
    rest = (largest["run_seconds"] - largest["import"]["seconds"]) * math.log(n) / math.log(largest["objects"])
    return round(imported + rest, 1)


def pubmed_cluster(runs: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Cluster sizes for all of PubMed from the largest completed run of each quantizer."""
    largest: dict[str, Mapping[str, Any]] = {}
    for run in runs.values():
        if run["status"] == "ok" and run["objects"] >= largest.get(run["quantizer"], {}).get("objects", 0):
            largest[run["quantizer"]] = run
    rows = []
    for quantizer, run in sorted(largest.items()):
        memory = run["memory"]
        for replication in (1, 3):
            rows.append({"quantizer": quantizer, "measured_at_objects": run["objects"],
                         "rss_bytes_per_object": memory["rss_bytes_per_object"],
                         "disk_bytes_per_object": memory["disk_bytes_per_object"],
                         **cluster_estimate(memory["rss_bytes_per_object"], memory["disk_bytes_per_object"],
                                            replication=replication)})
    return rows


def quantization_effect(runs: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each quantized run against the plain run of the same size: memory, disk and import time ratios, and recall
    and p50 latency side by side per ef and target vector."""
    plain = {run["objects"]: run for run in runs.values() if run["status"] == "ok" and run["quantizer"] == "none"}
    effect = {}
    for run in runs.values():
        base = plain.get(run["objects"])
        if run["status"] != "ok" or run["quantizer"] == "none" or base is None:
            continue
        memory, base_memory = run["memory"], base["memory"]
        effect[f"{run['objects']}-{run['quantizer']}"] = {
            "rss_after_import_ratio": round(memory["after_import"]["rss_bytes"] /
                                            base_memory["after_import"]["rss_bytes"], 3),
            "rss_bytes_per_object_ratio": round(memory["rss_bytes_per_object"] / base_memory["rss_bytes_per_object"],
                                                3),
            "disk_ratio": round(memory["after_import"]["disk_bytes"] / base_memory["after_import"]["disk_bytes"], 3),
            "import_seconds_ratio": round(run["import"]["seconds"] / base["import"]["seconds"], 3),
            "searches": [{"ef": mine["ef"], "target_vector": mine["target_vector"],
                          "recall_at_10": mine["recall_at_10"], "plain_recall_at_10": theirs["recall_at_10"],
                          "p50_ratio": round(mine["p50_ms"] / theirs["p50_ms"], 3)}
                         for mine, theirs in zip(run["near_vector"], base["near_vector"], strict=True)]}
    return effect


def markdown_summary(report: Mapping[str, Any]) -> str:
    """The README tables: one row per run and ef, then the PubMed cluster estimate."""
    lines = ["| objects | quantizer | import s | obj/s | failed | RSS after import MiB | RSS B/obj | disk MiB | ef | "
             "recall@10 text / joint | p50 / p95 ms text | BM25 p50 / p95 ms |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---|---|"]
    for run in report["runs"].values():
        if run["status"] != "ok":
            lines.append(f"| {run['objects']:,} | {run['quantizer']} | {run['status']}: {run['reason'][:80]} |")
            continue
        memory, imported = run["memory"], run["import"]
        by_ef: dict[int, dict[str, Any]] = {}
        for search in run["near_vector"]:
            by_ef.setdefault(search["ef"], {})[search["target_vector"]] = search
        for ef, targets in by_ef.items():
            text, joint = targets["text"], targets["joint"]
            lines.append(
                f"| {run['objects']:,} | {run['quantizer']} | {imported['seconds']} | {imported['objects_per_second']} "
                f"| {imported['failed_objects']} "
                f"| {memory['after_import']['rss_bytes'] / 2**20:.0f} | {memory['rss_bytes_per_object']:.0f} "
                f"| {memory['after_import']['disk_bytes'] / 2**20:.0f} | {ef} "
                f"| {text['recall_at_10']:.3f} / {joint['recall_at_10']:.3f} "
                f"| {text['p50_ms']} / {text['p95_ms']} | {run['bm25']['p50_ms']} / {run['bm25']['p95_ms']} |")
    baseline = report["baseline_brute_force_numpy"]
    lines += ["", "Exact numpy search, one query at a time (recall 1.0): "
              + ", ".join(f"{int(size):,} objects {b['p50_ms']} ms p50" for size, b in baseline.items()), "",
              f"All of PubMed ({PUBMED_ABSTRACTS / 1e6:.0f}M abstracts), nodes of 64 GiB with 70% for Weaviate:", "",
              "| quantizer | measured at | RSS B/obj | disk B/obj | replication | RAM GiB | disk GiB | nodes |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {row['quantizer']} | {row['measured_at_objects']:,} | {row['rss_bytes_per_object']:.0f} "
              f"| {row['disk_bytes_per_object']:.0f} | {row['replication']} | {row['ram_total_gib']} "
              f"| {row['disk_total_gib']} | {row['nodes']} |" for row in report["pubmed_cluster"]]
    return "\n".join(lines)


def plot(report: Mapping[str, Any], path: Path) -> Path:
    """Recall@10 against p95 latency, one line per size, quantizer and target vector, points labelled by ef."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for run in report["runs"].values():
        if run["status"] != "ok":
            continue
        for target, style in (("text", "-o"), ("joint", "--s")):
            points = [s for s in run["near_vector"] if s["target_vector"] == target]
            line, = axes.plot([s["p95_ms"] for s in points], [s["recall_at_10"] for s in points], style,
                              label=f"{run['objects']:,} {run['quantizer']} {target}")
            for search in points:
                axes.annotate(f"ef {search['ef']}", (search["p95_ms"], search["recall_at_10"]), fontsize=7,
                              color=line.get_color(), xytext=(3, 3), textcoords="offset points")
    axes.set_xscale("log")
    axes.set_xlabel("p95 latency, ms (near_vector, limit 10; log scale)")
    axes.set_ylabel("recall@10 vs exact search")
    axes.set_title("Weaviate HNSW: recall against latency per ef")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    return save_figure(figure, path)


def _settings_key(report: Mapping[str, Any]) -> tuple[Any, ...]:
    """What runs merged into one report must share (the quantizer only picks which runs a command adds)."""
    return report["seed"], report["mixture"], {k: v for k, v in report["settings"].items() if k != "quantizer"}


def main() -> None:
    config = load_config()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000 1000000", help="object counts, space separated")
    parser.add_argument("--quantizer", choices=QUANTIZERS, default="rq",
                        help="second run per size with this quantizer (rq = 8-bit rotational); none: plain only")
    parser.add_argument("--efs", default="64 128 256", help="HNSW ef values to search with")
    parser.add_argument("--queries", type=int, default=200, help="held-out query vectors and BM25 questions")
    parser.add_argument("--batch-size", type=int, default=200)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--qa", type=Path, default=Path(config.data_dir) / "pubmed" / "pubmedqa_pqal_dev.json",
                        help="PubMedQA JSON whose sentences and questions make the text")
    parser.add_argument("--binary", type=Path, help="weaviate-server binary (default: the medrag cache)")
    parser.add_argument("--data-root", type=Path, default=Path("/tmp/medrag-scale-bench"))
    parser.add_argument("--keep-data", action="store_true", help="keep each run's data dir")
    parser.add_argument("--append", action="store_true",
                        help="merge into an existing --out with the same settings; runs recorded ok are kept")
    parser.add_argument("--deadline", help="HH:MM UTC today: skip a run projected to end later (recorded with its "
                        "projected time)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/scale.json"))
    args = parser.parse_args()

    found = None if args.binary else find_binary(config)
    binary = args.binary or (found.path if found else None)
    if binary is None:
        parser.error("no weaviate-server binary: run `make setup`, set MEDRAG_WEAVIATE_BIN or pass --binary")
    if not args.qa.is_file():
        parser.error(f"{args.qa} not found; pass --qa with the PubMedQA pqal JSON or set MEDRAG_DATA_DIR")
    deadline = None
    if args.deadline:
        try:
            deadline = datetime.combine(datetime.now(UTC).date(), datetime.strptime(args.deadline, "%H:%M").time(),
                                        UTC)
        except ValueError:
            parser.error(f"--deadline {args.deadline!r} is not HH:MM (UTC), e.g. 12:00")
    sizes = [int(size) for size in args.sizes.split()]
    settings = Settings(efs=tuple(int(ef) for ef in args.efs.split()), queries=args.queries,
                        batch_size=args.batch_size, quantizer=args.quantizer)
    spec = MixtureSpec()
    mixture = VectorMixture(DIMS, spec, args.seed)
    sentences, questions = load_abstracts(args.qa)
    texts = AbstractTexts(sentences, args.seed)
    sample_words = [len(text.split()) for text in texts.chunk(0, 1000)]
    report: dict[str, Any] = {
        "benchmark": "scale", "date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": machine(),
        "weaviate_binary": str(binary), "weaviate_version": None, "seed": args.seed, "sizes": sizes,
        "mixture": {**dataclasses.asdict(spec), "dims": DIMS},
        "settings": {**dataclasses.asdict(settings), "efs": list(settings.efs)},
        "synthetic_vs_real_text_vectors_500": {
            "synthetic": vector_statistics(mixture.draw(500, SAMPLE_STREAM)["text"]),
            "real_minilm_pubmedqa": REAL_MINILM_PUBMEDQA},
        "text": {"source": args.qa.name, "sentences": len(sentences), "words_per_object_first_1000": {
            "mean": round(statistics.fmean(sample_words), 1), "min": min(sample_words), "max": max(sample_words)}},
        "baseline_brute_force_numpy": {}, "runs": {},
    }
    if args.append and args.out.exists():
        previous = json.loads(args.out.read_text())
        if _settings_key(previous) != _settings_key(report):
            parser.error(f"{args.out} was made with other seed, mixture or settings; drop --append or match them")
        report["baseline_brute_force_numpy"] = previous["baseline_brute_force_numpy"]
        report["runs"] = previous["runs"]
        report["sizes"] = sorted({*previous["sizes"], *sizes})

    def late(n: int, quantizer: str) -> dict[str, Any] | None:
        """The skipped-run record when a run projected from earlier ones would end past --deadline."""
        projected = projected_seconds(n, report["runs"], quantizer)
        if deadline is None or projected is None or time.time() + projected <= deadline.timestamp():
            return None
        return {"status": "skipped", "objects": n, "quantizer": quantizer, "projected_seconds": projected,
                "reason": f"projected {projected / 60:.0f} min, past the deadline {args.deadline} UTC"}

    for n in sizes:
        # --append keeps a run already measured at this size (the plain 1M run takes most of an hour)
        variants = [quantizer for quantizer in ["none"] + ([settings.quantizer] if settings.quantizer != "none" else [])
                    if report["runs"].get(f"{n}-{quantizer}", {}).get("status") != "ok"]
        if not variants:
            print(f"{n:,} objects: every run already in {args.out}")
            continue
        needed, available = memory_needed(n, report["runs"]), meminfo("MemAvailable")
        if needed > 0.9 * available:
            for quantizer in variants:
                report["runs"][f"{n}-{quantizer}"] = {
                    "status": "skipped", "objects": n, "quantizer": quantizer,
                    "reason": f"needs ~{needed / 2**30:.1f} GiB, {available / 2**30:.1f} GiB available"}
            continue
        if all(late(n, quantizer) for quantizer in variants):
            report["runs"].update({f"{n}-{quantizer}": late(n, quantizer) for quantizer in variants})
            continue
        try:
            started = time.perf_counter()
            workload = make_workload(mixture, texts, questions, n, settings.queries)
            print(f"{n:,} objects: vectors and exact top-10 in {time.perf_counter() - started:.1f} s")
            baseline = brute_force_baseline(workload.vectors["text"],
                                            workload.queries["text"][:settings.brute_force_queries])
        except MemoryError:
            for quantizer in variants:
                report["runs"][f"{n}-{quantizer}"] = {"status": "failed", "objects": n, "quantizer": quantizer,
                                                      "reason": "MemoryError generating the vectors in Python"}
            continue
        report["baseline_brute_force_numpy"][str(n)] = baseline
        for quantizer in variants:
            skipped, projected = late(n, quantizer), projected_seconds(n, report["runs"], quantizer)
            if skipped:
                report["runs"][f"{n}-{quantizer}"] = skipped
                continue
            run = {**benchmark_run(binary, args.data_root / f"{n}-{quantizer}", workload, quantizer, settings,
                                   keep_data=args.keep_data), "projected_seconds": projected}
            report["weaviate_version"] = report["weaviate_version"] or run["weaviate_version"]
            if run["status"] == "ok":
                for search in run["near_vector"]:
                    search["p50_over_brute_force_p50"] = round(search["p50_ms"] / baseline["p50_ms"], 4)
            report["runs"][f"{n}-{quantizer}"] = run
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2) + "\n")  # what is done survives a later failure
        del workload
    report["quantized_vs_plain"] = quantization_effect(report["runs"])
    report["pubmed_cluster"] = pubmed_cluster(report["runs"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    plot(report, args.out.with_suffix(".png"))
    print(markdown_summary(report))


if __name__ == "__main__":
    main()
