"""The audit trail: the hash chain, its verifier (changed, removed and swapped lines found by file and line), rotation,
file mode, two processes appending at once, the CLI, and a real Assistant that never writes the PHI it was given."""

from __future__ import annotations

import hashlib
import itertools
import json
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from medrag.audit import GENESIS, AuditError, AuditLog, AuditTrail, canonical, log_files, verify
from medrag.cli import main
from medrag.config import load_config
from medrag.store.errors import UnknownTenant


def write(path: Path, count: int, max_bytes: int = 10 * 1024 * 1024) -> list[dict]:
    log = AuditLog(path, max_bytes)
    return [log.append({"kind": "ask", "request": {"question": f"question number {n}"}}) for n in range(count)]


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def test_each_line_links_to_the_one_before_and_hashes_its_canonical_json(tmp_path):
    path = tmp_path / "audit.jsonl"
    written = write(path, 5)
    stored = [json.loads(line) for line in lines_of(path)]
    assert stored == written
    assert [line["seq"] for line in stored] == [1, 2, 3, 4, 5]
    assert stored[0]["prev"] == GENESIS
    for before, line in itertools.pairwise(stored):
        assert line["prev"] == before["hash"]
    for line in stored:
        body = {key: value for key, value in line.items() if key != "hash"}
        compact = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        assert line["hash"] == hashlib.sha256(compact).hexdigest()
    result = verify(path)
    assert result.ok and result.lines == 5 and result.files == (path,)
    assert (result.head.seq, result.head.hash) == (5, stored[-1]["hash"])
    assert AuditLog(path).head() == result.head


def test_a_changed_line_is_reported_with_its_line_number(tmp_path):
    path = tmp_path / "audit.jsonl"
    write(path, 6)
    lines = lines_of(path)
    lines[2] = lines[2].replace("question number 2", "question number 9")
    path.write_text("".join(lines))
    result = verify(path)
    assert not result.ok
    assert [(b.path, b.line, b.kind) for b in result.breaks] == [(path, 3, "changed")], "one edit, one break"
    assert str(result.first).startswith(f"{path}:3: changed: seq 3")


def test_a_changed_line_with_a_recomputed_hash_breaks_the_next_link(tmp_path):
    path = tmp_path / "audit.jsonl"
    write(path, 6)
    lines = lines_of(path)
    forged = json.loads(lines[2])
    forged["request"]["question"] = "a forged question"
    forged["hash"] = hashlib.sha256(canonical({k: v for k, v in forged.items() if k != "hash"})).hexdigest()
    lines[2] = canonical(forged).decode() + "\n"
    path.write_text("".join(lines))
    result = verify(path)
    assert [(b.line, b.kind) for b in result.breaks] == [(4, "removed")]
    assert f"{path}:3" in result.first.detail, "the message names the line that was re-hashed"


def test_a_removed_line_is_reported_where_the_gap_is(tmp_path):
    path = tmp_path / "audit.jsonl"
    write(path, 6)
    lines = lines_of(path)
    del lines[2]
    path.write_text("".join(lines))
    result = verify(path)
    assert [(b.line, b.kind) for b in result.breaks] == [(3, "removed")]
    assert "seq 3 missing before seq 4" in result.first.detail


def test_swapped_lines_are_reported_as_reordered(tmp_path):
    path = tmp_path / "audit.jsonl"
    write(path, 6)
    lines = lines_of(path)
    lines[1], lines[2] = lines[2], lines[1]
    path.write_text("".join(lines))
    result = verify(path)
    assert [(b.line, b.kind) for b in result.breaks] == [(2, "reordered"), (3, "reordered")]
    assert f"{path}:3" in result.first.detail, "it says where the expected line went"


def test_a_removed_first_line_and_a_duplicated_line_are_reported(tmp_path):
    path = tmp_path / "audit.jsonl"
    write(path, 4)
    lines = lines_of(path)
    path.write_text("".join([*lines[1:], lines[2]]))
    result = verify(path)
    assert [(b.line, b.kind) for b in result.breaks] == [(1, "removed"), (4, "duplicated")]


def test_rotation_continues_the_chain_across_files(tmp_path):
    path = tmp_path / "audit.jsonl"
    written = write(path, 40, max_bytes=800)
    files = log_files(path)
    assert len(files) >= 4 and files[-1] == path and files[0].name == f"audit.jsonl.{len(files) - 1}"
    assert all(file.stat().st_size <= 800 for file in files)
    assert sum(len(lines_of(file)) for file in files) == 40
    assert json.loads(lines_of(path)[0])["prev"] == json.loads(lines_of(files[-2])[-1])["hash"]
    result = verify(path)
    assert result.ok and result.lines == 40 and result.head.hash == written[-1]["hash"]
    assert verify(files).ok, "an explicit list of files in chain order verifies too"

    middle = files[1]
    lines = lines_of(middle)
    lines[1] = lines[1].replace("question number", "question NUMBER")
    middle.write_text("".join(lines))
    assert [(b.path, b.line, b.kind) for b in verify(path).breaks] == [(middle, 2, "changed")]

    middle.unlink()
    gone = verify(path).breaks
    assert [(b.path, b.line, b.kind) for b in gone] == [(files[2], 1, "removed")], "a lost rotated file is a gap"


def test_files_are_created_owner_only(tmp_path):
    path = tmp_path / "audit" / "audit.jsonl"
    write(path, 10, max_bytes=400)
    created = [*log_files(path), path.with_name("audit.jsonl.lock")]
    assert len(created) >= 3
    for file in created:
        assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    loose = tmp_path / "loose.jsonl"
    loose.touch(mode=0o644)
    loose.chmod(0o644)
    write(loose, 1)
    assert stat.S_IMODE(loose.stat().st_mode) == 0o600, "a log made by someone else is tightened"


WRITER = textwrap.dedent("""
    import sys
    from medrag.audit import AuditLog
    log = AuditLog(sys.argv[1], max_bytes=4096)
    for n in range(int(sys.argv[3])):
        log.append({"writer": sys.argv[2], "n": n})
""")


def test_two_processes_appending_at_once_keep_one_valid_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    count = 150
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, str(count)]) for name in "ab"]
    assert [writer.wait(timeout=300) for writer in writers] == [0, 0]
    result = verify(path)
    assert result.ok, [str(b) for b in result.breaks]
    assert result.lines == 2 * count and result.head.seq == 2 * count
    assert len(result.files) > 2, "rotations happened while both wrote"
    records = [json.loads(line) for file in result.files for line in lines_of(file)]
    for name in "ab":
        assert [r["n"] for r in records if r["writer"] == name] == list(range(count)), "each writer's lines, in order"


def test_a_torn_last_line_stops_appends_with_the_file_named(tmp_path):
    path = tmp_path / "audit.jsonl"
    write(path, 2)
    with path.open("a") as handle:
        handle.write('{"kind": "ask", "seq": 3')
    with pytest.raises(AuditError, match=f"last line of {path}"):
        write(path, 1)
    assert [(b.line, b.kind) for b in verify(path).breaks] == [(3, "changed")]


def test_records_may_not_set_the_chain_fields(tmp_path):
    with pytest.raises(ValueError, match="seq"):
        AuditLog(tmp_path / "audit.jsonl").append({"seq": 99})


def test_config_section_from_the_environment(tmp_path):
    config = load_config(env={"MEDRAG_HOME": str(tmp_path), "MEDRAG_AUDIT_MAX_BYTES": "2048",
                              "MEDRAG_AUDIT_ACTOR": "svc-pacs"})
    assert config.audit_log == tmp_path / "audit" / "audit.jsonl"
    trail = AuditTrail.from_config(config)
    assert trail.actor == "svc-pacs" and trail.log.max_bytes == 2048
    assert AuditTrail.from_config(load_config(env={"MEDRAG_AUDIT_ENABLED": "false"})) is None
    moved = load_config(env={"MEDRAG_AUDIT_LOG": str(tmp_path / "elsewhere.jsonl")})
    assert moved.audit_log == tmp_path / "elsewhere.jsonl"


def test_cli_verify_exits_non_zero_on_a_broken_chain_and_head_prints_the_anchor(tmp_path, capsys):
    path = tmp_path / "audit.jsonl"
    written = write(path, 3)
    assert main(["audit", "verify", str(path)]) == 0
    assert "audit trail OK: 3 lines" in capsys.readouterr().out
    assert main(["audit", "head", str(path)]) == 0
    assert capsys.readouterr().out.strip() == f"seq 3 sha256 {written[-1]['hash']}"
    lines = lines_of(path)
    path.write_text(lines[0] + lines[2])
    assert main(["audit", "verify", str(path)]) == 1
    assert f"audit trail BROKEN: {path}:2: removed" in capsys.readouterr().err
    assert main(["audit", "verify", str(tmp_path / "none.jsonl")]) == 2
    assert "no audit log at" in capsys.readouterr().err


# --- a real Assistant over the real server --------------------------------------------------------------------------

NOTE = "Patient John Smith, MRN: 4829173, seen 03/14/2026, call (617) 555-0123. Dyspnoea and fever for three days."
PHI = ("John", "Smith", "4829173", "03/14/2026", "(617) 555-0123", "555-0123")


def test_the_assistant_records_deidentified_requests_sources_and_answers_never_phi(config, store, tenant,
                                                                                   text_encoder, joint_encoder,
                                                                                   pubmedqa, tmp_path):
    from medrag.assistant import Assistant

    path = tmp_path / "audit" / "audit.jsonl"
    assistant = Assistant(config.replace(audit={"log": path}), store, text_encoder=text_encoder,
                          joint_encoder=joint_encoder)
    entries = dict(list(pubmedqa.items())[:3])
    source = tmp_path / "qa.json"
    source.write_text(json.dumps(entries))
    assistant.ingest_pubmed([source], tenant=tenant)
    assert not path.exists(), "ingestion is not a request"
    questions = [entry["QUESTION"] for entry in entries.values()]

    answer = assistant.ask(question=questions[0], note=NOTE, tenant=tenant, mode="extractive", actor="dr-lee")
    found = assistant.search(question=f"{questions[1]} Seen by John Smith on 03/14/2026.", tenant=tenant, k=3)
    batch = assistant.ask_batch([{"question": questions[1]}, {"question": questions[2], "note": NOTE}],
                                tenant=tenant, mode="extractive", actor="dr-lee")
    with pytest.raises(UnknownTenant):
        assistant.ask(question=f"MRN 4829173: {questions[0]}", note=NOTE, tenant="no-such-hospital")

    text = path.read_text()
    for value in PHI:
        assert value not in text, f"{value!r} reached the audit log"
    records = [json.loads(line) for line in text.splitlines()]
    assert [(r["kind"], r["item"], r["items"]) for r in records] == [
        ("ask", 1, 1), ("search", 1, 1), ("ask_batch", 1, 2), ("ask_batch", 2, 2), ("ask", 1, 1)]

    asked = records[0]
    assert asked["actor"] == "dr-lee" and asked["tenant"] == tenant
    assert asked["request"]["note"] == answer.search.query.note
    assert "[NAME]" in asked["request"]["note"] and "[ID]" in asked["request"]["note"]
    assert asked["request"]["question"] == answer.search.query.question and asked["request"]["question"]
    assert {"[NAME]", "[ID]", "[DATE]", "[PHONE]"} <= set(asked["request"]["scrubbed"])
    assert [e["source_id"] for e in asked["evidence"]] == [e.source_id for e in answer.evidence]
    assert asked["evidence"] and all(len(e["uuid"]) == 36 for e in asked["evidence"])
    assert asked["answer"]["text"] == answer.text and asked["models"] == answer.models
    assert [c["source_id"] for c in asked["answer"]["citations"]] == [c.source_id for c in answer.citations]
    assert asked["answer"]["decision"]["label"] == answer.decision.label

    searched = records[1]
    assert searched["actor"] == AuditTrail.from_config(config).actor, "no actor given: the default"
    assert "[NAME]" in searched["request"]["question"] and searched["k"] == 3
    assert [e["source_id"] for e in searched["evidence"]] == [e.source_id for e in found.evidence]
    assert "answer" not in searched and searched["models"]["reranker"] == assistant.reranker.name

    assert [r["answer"]["text"] for r in records[2:4]] == [a.text for a in batch]
    assert records[3]["request"]["note"] == batch[1].search.query.note

    failed = records[4]
    assert failed["error"] == "UnknownTenant" and failed["tenant"] == "no-such-hospital"
    assert failed["request"] == {"given": ["question", "note"]}, "names of the inputs, not their text"
    assert "answer" not in failed and "evidence" not in failed

    result = verify(path)
    assert result.ok and result.lines == 5
