"""``medrag ingest`` as a user runs it, against the session's real Weaviate server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from medrag.store import ARTICLES


@pytest.fixture
def cli_env(config, store):
    """Point a child process at the session server (external-URL mode) with this session's home."""
    return {
        **os.environ,
        "MEDRAG_HOME": str(config.home),
        "MEDRAG_WEAVIATE_URL": store.url,
        "MEDRAG_WEAVIATE_API_KEY": store.server.api_key,
        "MEDRAG_WEAVIATE_GRPC_PORT": str(store.server.grpc_port),
    }


def ingest(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medrag", "ingest", *args], env=env, capture_output=True,
                          text=True, timeout=600)


def test_ingest_prints_a_summary_and_writes_a_report(cli_env, tenant, tmp_path, pubmedqa):
    subset = tmp_path / "qa.json"
    subset.write_text(json.dumps(dict(list(pubmedqa.items())[:10])))
    report = tmp_path / "report.json"
    result = ingest("pubmed", str(subset), "--tenant", tenant, "--report", str(report), env=cli_env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "read 10, ingested 10 (10 new), unchanged 0, skipped 0, failed 0" in result.stdout
    assert "ingest PubmedArticle" in result.stderr  # the progress bar, with its rate
    assert json.loads(report.read_text())["written"] == 10


def test_failures_set_the_exit_code(cli_env, tenant, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"123": {"QUESTION": "q", "CONTEXTS": [')
    result = ingest("pubmed", str(broken), "--tenant", tenant, "--no-progress", env=cli_env)
    assert result.returncode == 1
    assert "broken.json" in result.stdout


def test_kill_9_mid_run_then_rerun_ends_with_exactly_the_expected_count(cli_env, store, tenant, data_dir):
    source = data_dir / "pubmed" / "pubmedqa_pqal_dev.json"
    child = subprocess.Popen(
        [sys.executable, "-m", "medrag", "ingest", "pubmed", str(source), "--tenant", tenant, "--no-progress"],
        env=cli_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 300
    while store.count(ARTICLES, tenant=tenant) < 100 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.2)
    child.send_signal(signal.SIGKILL)
    child.wait()
    partial = store.count(ARTICLES, tenant=tenant)
    assert 100 <= partial < 500, "the kill should land mid-run"

    result = ingest("pubmed", str(source), "--tenant", tenant, "--no-progress", env=cli_env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert store.count(ARTICLES, tenant=tenant) == 500
    assert f"ingested {500 - partial} ({500 - partial} new), unchanged {partial}" in result.stdout
