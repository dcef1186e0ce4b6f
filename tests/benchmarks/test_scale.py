"""benchmarks/scale.py: its pure parts on hand-made cases, and one small run against the real server."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from medrag.store.binary import WeaviateBinary

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "scale.py"


def _load_script() -> ModuleType:
    """Load by path: pysbd (a dependency) installs a top-level ``benchmarks`` package that shadows the folder."""
    spec = importlib.util.spec_from_file_location("scale_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None, f"cannot load {SCRIPT}"
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the classes are made
    spec.loader.exec_module(module)
    return module


scale = _load_script()


@pytest.mark.unit
def test_recall_counts_the_exact_top_k_found_and_short_lists_as_misses() -> None:
    exact = np.array([list(range(10)), list(range(10, 20))])
    found = [list(range(9, -1, -1)), [10, 11, 12, 13, 14, 0, 1, 2, 3, 4]]
    assert scale.recall_at_k(found, exact) == pytest.approx(0.75)
    assert scale.recall_at_k([[0, 1], list(range(10, 20))], exact) == pytest.approx((0.2 + 1.0) / 2)
    with pytest.raises(ValueError, match="one list per query"):
        scale.recall_at_k(found[:1], exact)


@pytest.mark.unit
def test_exact_top_k_merges_blocks_into_the_true_ranking() -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((53, 8)).astype(np.float32)
    queries = rng.standard_normal((4, 8)).astype(np.float32)
    expected = np.argsort(-(queries @ base.T), axis=1)[:, :10]
    np.testing.assert_array_equal(scale.exact_top_k(base, queries, block=7), expected)


@pytest.mark.unit
def test_mixture_draws_unit_vectors_deterministically_and_row_by_row() -> None:
    spec = scale.MixtureSpec(clusters=50)
    dims = {"text": 384, "joint": 256}
    first = scale.VectorMixture(dims, spec, seed=3).draw(scale.CHUNK + 5, scale.STORE_STREAM)
    again = scale.VectorMixture(dims, spec, seed=3).draw(300, scale.STORE_STREAM)
    other_seed = scale.VectorMixture(dims, spec, seed=4).draw(300, scale.STORE_STREAM)
    queries = scale.VectorMixture(dims, spec, seed=3).draw(300, scale.QUERY_STREAM)
    for name, dim in dims.items():
        assert first[name].shape == (scale.CHUNK + 5, dim) and first[name].dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(first[name], axis=1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(first[name][:300], again[name])  # row i does not depend on the size
        assert not np.allclose(again[name], other_seed[name])
        assert not np.allclose(again[name], queries[name])  # held-out queries are other draws


@pytest.mark.unit
def test_default_mixture_stays_close_to_real_minilm_abstract_vectors() -> None:
    """The defaults were fitted to MiniLM on PubMedQA abstracts; a change that breaks the fit fails here."""
    sample = scale.VectorMixture(scale.DIMS, scale.MixtureSpec(), seed=17).draw(500, scale.SAMPLE_STREAM)["text"]
    synthetic, real = scale.vector_statistics(sample), scale.REAL_MINILM_PUBMEDQA
    assert synthetic["mean_pair_cosine"] == pytest.approx(real["mean_pair_cosine"], abs=0.03)
    assert synthetic["mean_nn1_cosine"] == pytest.approx(real["mean_nn1_cosine"], abs=0.05)
    assert synthetic["participation_ratio"] == pytest.approx(real["participation_ratio"], rel=0.25)


@pytest.mark.unit
def test_texts_recombine_whole_sentences_up_to_the_drawn_length() -> None:
    sentences = [f"Sentence {i} has exactly seven words here." for i in range(30)]
    texts = scale.AbstractTexts(sentences, seed=1, words=(150, 250))
    chunk = texts.chunk(0, 200)
    for text in chunk:
        assert 150 <= len(text.split()) < 257  # the sentence that reaches the target is kept whole
        assert all(f"{part.strip()}." in sentences for part in text.split(".") if part.strip())
    assert chunk == scale.AbstractTexts(sentences, seed=1).chunk(0, 200)
    with pytest.raises(ValueError, match="--qa"):
        scale.AbstractTexts([], seed=1)


@pytest.mark.unit
def test_object_ids_look_random_but_map_back_to_their_row() -> None:
    rows = [0, 1, 2, 999_999, 36_999_999]
    ids = [scale.object_uuid(row) for row in rows]
    assert len(set(ids)) == len(rows) and ids[1].int != ids[0].int + 1
    assert [scale.object_row(object_id) for object_id in ids] == rows


@pytest.mark.unit
def test_cluster_estimate_arithmetic() -> None:
    gib = 2**30
    single = scale.cluster_estimate(4000, 10_000, objects=37_000_000, node_ram_gib=64, usable_fraction=0.7)
    assert single["ram_total_gib"] == pytest.approx(4000 * 37e6 / gib, abs=0.1)  # 137.8 GiB
    assert single["nodes"] == math.ceil(4000 * 37e6 / (64 * gib * 0.7)) == 4
    assert single["disk_per_node_gib"] == pytest.approx(10_000 * 37e6 / 4 / gib, abs=0.1)
    assert scale.cluster_estimate(4000, 10_000, replication=3)["nodes"] == 10  # 413.4 GiB / 44.8 GiB
    assert scale.cluster_estimate(10, 10, replication=3)["nodes"] == 3  # never fewer nodes than copies


@pytest.mark.unit
def test_pubmed_cluster_uses_the_largest_completed_run_of_each_quantizer() -> None:
    def run(objects: int, quantizer: str, per_object: float, status: str = "ok") -> dict:
        return {"status": status, "objects": objects, "quantizer": quantizer,
                "memory": {"rss_bytes_per_object": per_object, "disk_bytes_per_object": 2 * per_object}}

    rows = scale.pubmed_cluster({"a": run(1000, "none", 5000), "b": run(100_000, "none", 4000),
                                 "c": run(1_000_000, "none", 1, status="skipped"), "d": run(1000, "rq", 2000)})
    assert [(row["quantizer"], row["measured_at_objects"], row["replication"]) for row in rows] == [
        ("none", 100_000, 1), ("none", 100_000, 3), ("rq", 1000, 1), ("rq", 1000, 3)]
    assert rows[0]["rss_bytes_per_object"] == 4000


@pytest.mark.unit
def test_memory_and_time_projections_scale_from_large_enough_runs() -> None:
    vectors = (384 + 256) * 4
    small = {"status": "ok", "objects": 5000, "quantizer": "none", "memory": {"rss_bytes_per_object": 50_000}}
    large = {"status": "ok", "objects": 100_000, "quantizer": "none", "memory": {"rss_bytes_per_object": 5000},
             "import": {"objects_per_second": 250.0, "seconds": 400.0}, "run_seconds": 500.0}
    assert scale.memory_needed(1000, {}) == 1000 * (vectors + 8192)
    assert scale.memory_needed(1000, {"a": small}) == 1000 * (vectors + 8192)  # fixed buffers dominate small runs
    assert scale.memory_needed(1000, {"a": small, "b": large}) == 1000 * (vectors + 6500)
    depth = math.log(1e6) / math.log(1e5)
    assert scale.projected_seconds(1_000_000, {"b": large}, "none") == pytest.approx(
        1e6 / 250 * depth + 100 * depth, abs=0.1)  # one run: time per object ~ log N
    smaller = {**large, "objects": 10_000, "import": {"objects_per_second": 500.0, "seconds": 20.0}}
    # two runs: 2 ms per object at 10k, 4 ms at 100k, so 6 ms at 1M (linear in log N)
    assert scale.projected_seconds(1_000_000, {"a": smaller, "b": large}, "none") == pytest.approx(
        1e6 * 0.006 + 100 * depth, abs=0.1)
    assert scale.projected_seconds(1_000_000, {"b": large}, "rq") is None


def test_small_run_end_to_end(weaviate_binary: WeaviateBinary, data_dir: Path, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """2,000 objects, plain and quantized, through the command line: JSON, PNG and summary are written."""
    out = tmp_path / "scale.json"
    monkeypatch.setattr(sys, "argv", [
        str(SCRIPT), "--sizes", "2000", "--queries", "50", "--binary", str(weaviate_binary.path),
        "--qa", str(data_dir / "pubmed" / "pubmedqa_pqal_dev.json"), "--data-root", str(tmp_path / "data"),
        "--out", str(out)])
    started = time.monotonic()
    scale.main()
    assert time.monotonic() - started < 60
    report = json.loads(out.read_text())
    assert out.with_suffix(".png").stat().st_size > 0
    assert set(report["runs"]) == {"2000-none", "2000-rq"}
    for run in report["runs"].values():
        assert run["status"] == "ok", run.get("reason")
        assert run["import"]["failed_objects"] == 0 and run["import"]["objects_in_collection"] == 2000
        highest = max(search["ef"] for search in run["near_vector"])
        for search in run["near_vector"]:
            if search["ef"] == highest:
                assert search["recall_at_10"] >= 0.9, search
    assert report["runs"]["2000-rq"]["hnsw"]["quantizer"] == "_RQConfig"
    assert report["runs"]["2000-none"]["hnsw"]["quantizer"] is None
    assert not any((tmp_path / "data").iterdir())  # each run's data dir is deleted
