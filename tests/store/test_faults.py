"""Faults of the vector store, each on its own real Weaviate servers (``reliability/faults.py`` runs the same scenarios
at full size): repeated kills during ingest, a kill or a hang under a query, a read-only or full data disk."""

from __future__ import annotations

import pytest

from medrag.store import ARTICLES, TEXT_VECTOR, Record, ServerStartError, Store, StoreError
from reliability import SUITES
from reliability.__main__ import AREAS
from reliability.faults import (
    QUERY_MARGIN,
    QUERY_TIMEOUT,
    full_disk,
    isolated,
    kill_during_ingest,
    kill_during_query,
    run,
    tmpfs,
)


def test_repeated_kills_during_ingest_lose_nothing_and_keep_bm25_and_vectors_in_step(config, data_dir,
                                                                                      weaviate_binary, tmp_path):
    """Seed 1 with three kills left 7 of 60 objects out of Weaviate's id index before ``Store.unindexed`` looked
    there (stored and counted, invisible to ``fetch`` and rewritten in vain by every re-run)."""
    result = kill_during_ingest(config, tmp_path, kills=3, records=60, seed=1)
    assert result.kills == 3 and result.restarts >= 3
    assert result.stored == result.expected == 60
    assert result.lost == []
    assert result.bm25_missed == [] and result.vector_missed == [] and result.disagreements == 0
    assert result.completing_run_added == 60 - result.before_completing_run
    assert (result.final_rerun_written, result.final_rerun_added) == (0, 0)


def test_a_query_under_a_kill_or_a_hang_fails_fast_and_clearly_and_the_next_one_works(config, weaviate_binary,
                                                                                      tmp_path):
    faults = {fault.name: fault for fault in kill_during_query(config, tmp_path)}
    assert set(faults) == {"killed in flight", "server hung", "external server killed"}
    for fault in faults.values():
        assert fault.clear, fault.error
        assert fault.seconds < QUERY_TIMEOUT + QUERY_MARGIN, fault
    assert "server is gone" in faults["killed in flight"].error
    assert f"did not answer within {QUERY_TIMEOUT:g} s" in faults["server hung"].error
    assert faults["server hung"].seconds >= QUERY_TIMEOUT - 0.5  # it waited for the timeout, not less
    assert faults["killed in flight"].next_query == faults["server hung"].next_query == "ok"


def test_a_dead_embedded_server_is_restarted_by_the_next_call_on_the_same_data(config, weaviate_binary, tmp_path):
    settings = isolated(config, tmp_path)
    with Store.open(settings) as store:
        assert not store.check_indexes  # a new data dir
        store.ensure_schema()
        store.create_tenant()
        store.upsert(ARTICLES, [Record("a", {"text": "pleural effusion"}, {TEXT_VECTOR: [1.0, 0.0]})])
        first = store.server.pid
        store.server.kill()
        with pytest.raises(StoreError, match="The next call restarts it"):
            store.count(ARTICLES)
        assert store.count(ARTICLES) == 1
        assert store.server.pid != first and store.server.data_dir == (tmp_path / "weaviate").resolve()
        assert store.check_indexes  # it came back from a kill: writers look for vectors the index lost
        # Weaviate kept the acknowledged object, but its vector index may have lost it (a buffered commit log, found
        # in every kill right after a write so far): BM25 finds it, vector search does not, until it is rewritten.
        assert [hit.source_id for hit in store.bm25(ARTICLES, "effusion")] == ["a"]
        lost = store.unindexed(ARTICLES, ["a", "not-stored"])
        assert lost in (["a"], [])
        assert store.repair_indexes(ARTICLES) == lost
        assert store.unindexed(ARTICLES, ["a"]) == []
        assert [hit.source_id for hit in store.near_vector(ARTICLES, [1.0, 0.0], limit=1)] == ["a"]
        assert store.fetch(ARTICLES, "a").properties["text"] == "pleural effusion"
    with Store.open(settings) as store:
        assert not store.check_indexes  # the server before stopped cleanly


def test_a_read_only_data_dir_is_a_clear_error(config, weaviate_binary, tmp_path):
    folder = tmp_path / "readonly"
    with tmpfs(folder, "ro,size=1m") as mounted:
        if not mounted:
            pytest.skip("mounting a read-only tmpfs needs root")
        with pytest.raises(ServerStartError) as error:
            Store.open(isolated(config, tmp_path, data_dir=folder))
    message = str(error.value)
    assert f"Weaviate data dir {folder} is not writable" in message
    assert "Read-only file system" in message and "MEDRAG_WEAVIATE_DATA_DIR" in message


def test_a_full_disk_names_the_data_dir_and_the_fix(config, weaviate_binary, tmp_path):
    check = full_disk(config, tmp_path)
    if check is None:
        pytest.skip("mounting a small tmpfs needs root")
    assert check.clear, check.error
    # Weaviate refuses writes at 90 % ("read-only due to: resource pressure"), or a write fails first on ENOSPC.
    assert "read-only due to" in check.error or "no space left on device" in check.error
    assert "% full" in check.error and str(tmp_path / "full" / "weaviate") in check.error


def test_the_faults_area_is_registered_and_run_by_python_m_reliability():
    assert SUITES["faults"] is run
    assert "faults" in AREAS
