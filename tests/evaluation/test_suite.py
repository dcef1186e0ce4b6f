"""``medrag eval all``: a smoke run on the first few items of every input in the real data folder."""

from __future__ import annotations

import json

from evaluation.suite import run_all
from medrag.reporting import strict_json
from medrag.store import ARTICLES

SUITES = ("retrieval", "routing", "qa", "read", "report", "vqa", "latency")


def test_eval_all_runs_every_supported_suite_and_writes_an_index(assistant, data_dir, tenant, tmp_path):
    out = tmp_path / "results"
    index = run_all(assistant, data_dir, out, tenant=tenant, limit=6, generate=1, progress=False)
    suites = index["suites"]
    assert {name for name, result in suites.items() if result["status"] == "ok"} == set(SUITES), suites
    assert suites["ablate"]["status"] == "not run" and "medrag eval ablate" in suites["ablate"]["why"]
    for name in SUITES:
        assert (out / name).is_dir() and any((out / name).glob("*.png")), f"{name} wrote its figures"
        for label, row in suites[name]["headline"].items():
            if row["ci95"] is not None and row["ci95"][0] == row["ci95"][0]:  # not NaN
                assert row["ci95"][0] - 1e-9 <= row["value"] <= row["ci95"][1] + 1e-9, label
    retrieval = json.loads((out / "retrieval" / "retrieval.json").read_text())["pubmedqa"]
    assert "routed + rerank" in retrieval["methods"] and (out / "retrieval" / "retrieval_recall_at_k.png").is_file()
    curve = retrieval["recall_curve"]["bm25"]
    assert curve == sorted(curve) and len(curve) == retrieval["k"]
    routing = suites["routing"]
    assert 0 < routing["queries"] <= 6 * 3 and "always" in " ".join(routing["headline"])
    latency = suites["latency"]["headline"]
    assert latency["text question, end to end p50 ms"]["value"] <= latency["text question, end to end p99 ms"]["value"]
    qa = suites["qa"]
    assert qa["questions"] <= 6 and any("majority class" in label for label in qa["headline"])
    assert index["tenant"]["name"] == tenant and index["tenant"]["objects"][ARTICLES] >= qa["questions"]
    hashes = index["provenance"]["inputs_sha256"]
    assert str(data_dir / "pubmed" / "pubmedqa_pqal_dev.json") in hashes
    assert all(len(digest) == 64 for digest in hashes.values())
    written = json.loads((out / "index.json").read_text())
    assert written["limit"] == 6 and "smoke run" in (out / "index.md").read_text()
    assert "[retrieval](retrieval/)" in (out / "index.md").read_text()
    rerun = run_all(assistant, data_dir, out, tenant=tenant, limit=6, generate=1, only=("routing",), progress=False)
    assert set(rerun["suites"]) == set(suites), "a partial rerun keeps the other suites' entries"
    assert rerun["suites"]["qa"] == json.loads(json.dumps(strict_json(suites["qa"]))), "kept as written"
    assert [entry["suites"] for entry in rerun["reruns"]] == [["routing"]]
    assert "Rerun on" in (out / "index.md").read_text() and "routing" in (out / "index.md").read_text()
