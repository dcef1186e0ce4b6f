"""Faults: Weaviate killed during ingest and during queries, a read-only or full data disk, damaged model files and a
missing de-identification key (``python -m reliability --only faults``).

What a hospital's reliability review asks: does a crash of the vector store lose or half-index anything that was
acknowledged, does a request made while it is down fail fast with an error that says what to do, does the service
come back without a restart of the application, and does a broken file on disk say which file and what to do
instead of a traceback from inside torch or safetensors. Every scenario runs real Weaviate servers started by
medrag's own server code in temporary directories; nothing is mocked.

The ingest scenario uses the real ingest path (loader, de-identification, content hashes, batched upserts) over real
PubMedQA abstracts, with a hashing text encoder instead of MiniLM: the faults are in the store, and a deterministic
random vector per text makes "its own vector finds it first" an exact test that runs in seconds on two cores.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medrag.config import Config
from medrag.deid.secrets import DeidKeyError, deid_key
from medrag.encode.joint import DEFAULT_CHECKPOINT as JOINT_CHECKPOINT
from medrag.encode.joint import PARTIAL_WEIGHTS, CorruptCheckpoint, JointEncoder
from medrag.fuse.checkpoint import CHECKPOINT_CONFIG, CHECKPOINT_WEIGHTS
from medrag.fuse.checkpoint import DEFAULT_CHECKPOINT as FUSION_CHECKPOINT
from medrag.fuse.checkpoint import CorruptCheckpoint as CorruptFusion
from medrag.fuse.reranker import FusionReranker
from medrag.ingest.pipeline import Ingestor
from medrag.store import ARTICLES, TEXT_VECTOR, ImportFailed, Record, ServerStartError, Store, StoreError
from reliability import register_suite

QUERY_MARGIN = 3.0
"""Seconds over ``[weaviate] timeout`` a request may take to fail when the server dies or hangs under it."""
QUERY_TIMEOUT = 3.0
"""The ``[weaviate] timeout`` of the query scenarios: short, so a hang is measured in seconds."""


def isolated(config: Config, home: Path, **weaviate: Any) -> Config:
    """``config`` with its own home and embedded server (own data dir, free ports): a scenario may kill it."""
    return config.replace(home=home, weaviate={"url": None, "data_dir": None, "port": None, "key_file": None,
                                               **weaviate})


class HashingEncoder:
    """A deterministic random unit vector per text (seeded by its sha256): the ingest path without MiniLM.

    Two different texts get nearly orthogonal vectors, so an object's own vector finds it first or the index lost it.
    """

    model_path = Path("hashing-encoder")
    dim = 64

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows = [np.random.default_rng(int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little"))
                .standard_normal(self.dim) for text in texts]
        matrix = np.array(rows, dtype=np.float32).reshape(len(rows), self.dim)
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True).clip(1e-12)


def planted_token(source_id: str) -> str:
    """A word that occurs in one object only (letters: the scrubber leaves it, the tokenizer keeps it whole)."""
    digest = hashlib.sha256(source_id.encode()).hexdigest()[:10]
    return "zqx" + "".join(chr(ord("a") + int(digit, 16)) for digit in digest)


def planted_pubmedqa(source: Path, target: Path, count: int) -> dict[str, str]:
    """The first ``count`` PubMedQA questions with a unique token added to each abstract; {pmid: token}."""
    questions = dict(list(json.loads(source.read_text()).items())[:count])
    tokens = {pmid: planted_token(pmid) for pmid in questions}
    for pmid, item in questions.items():
        item["CONTEXTS"] = [*item["CONTEXTS"][:-1], f"{item['CONTEXTS'][-1]} Marker {tokens[pmid]}."]
    target.write_text(json.dumps(questions))
    return tokens


@dataclasses.dataclass
class IngestFaults:
    """What repeated kills during ingest left behind, checked object by object."""

    expected: int
    kills: int = 0
    restarts: int = 0
    stored: int = 0
    lost: list[str] = dataclasses.field(default_factory=list)
    """Objects neither search finds (or that are not stored at all)."""
    bm25_missed: list[str] = dataclasses.field(default_factory=list)
    vector_missed: list[str] = dataclasses.field(default_factory=list)
    completing_run_added: int = 0
    before_completing_run: int = 0
    final_rerun_written: int = -1
    final_rerun_added: int = -1
    seconds: float = 0.0

    @property
    def disagreements(self) -> int:
        """Objects one search finds and the other does not: an inverted index out of step with the vectors."""
        return len(set(self.bm25_missed) ^ set(self.vector_missed))

    @property
    def passed(self) -> bool:
        return (self.stored == self.expected and not self.lost and not self.bm25_missed and not self.vector_missed
                and self.completing_run_added == self.expected - self.before_completing_run
                and self.final_rerun_written == 0 and self.final_rerun_added == 0)


def kill_during_ingest(config: Config, work: Path, *, kills: int, records: int, seed: int = 0) -> IngestFaults:
    """SIGKILL the embedded server ``kills`` times at random points of an ingest, re-running the ingest through the
    same Store each time (it restarts the server on the same data dir), then check every object by BM25 and by
    vector, and that a final re-run writes nothing."""
    started = time.monotonic()
    rng = random.Random(seed)
    subset = work / "pubmedqa-planted.json"
    work.mkdir(parents=True, exist_ok=True)
    tokens = planted_pubmedqa(Path(config.data_dir) / "pubmed" / "pubmedqa_pqal_dev.json", subset, records)
    result = IngestFaults(expected=len(tokens))
    encoder = HashingEncoder()
    with Store.open(isolated(config, work / "home", batch_size=8), log=lambda _: None) as store:
        armed: dict[str, Any] = {}

        def on_progress(done: int, total: int) -> None:
            if armed and done >= armed["at"] and "timer" not in armed:
                # A random delay lands the kill anywhere in the next batch: encoding, the write, its reply.
                armed["timer"] = threading.Timer(rng.uniform(0.0, 0.3), armed["server"].kill)
                armed["timer"].start()

        ingestor = Ingestor(store.config, store, text_encoder=encoder, joint=False, tenant="faults", batch_size=8,
                            progress=False, on_progress=on_progress)
        pids = {store.server.pid if store.server else None}
        for _ in range(kills * 3):
            if result.kills == kills:
                break
            armed.clear()
            armed.update(at=rng.randrange(1, result.expected), server=store.server)
            try:
                ingestor.pubmed([subset])
            except StoreError:
                result.kills += 1
            finally:
                timer = armed.get("timer")
                if timer is not None:
                    timer.cancel()
                    timer.join()
            armed.clear()
            result.before_completing_run = _count_after_restart(store)  # a kill after the run ended: restart here
            pids.add(store.server.pid if store.server else None)
        result.restarts = len(pids) - 1
        result.completing_run_added = ingestor.pubmed([subset]).added
        final = ingestor.pubmed([subset])
        result.final_rerun_written, result.final_rerun_added = final.written, final.added
        result.stored = store.count(ARTICLES, tenant="faults")
        for pmid, token in tokens.items():
            stored = store.fetch(ARTICLES, pmid, tenant="faults")
            if stored is None:
                result.lost.append(pmid)
                continue
            by_words = store.bm25(ARTICLES, token, limit=2, tenant="faults")
            if not by_words or by_words[0].source_id != pmid:
                result.bm25_missed.append(pmid)
            own = encoder.encode([stored.properties["text"]])[0]
            by_vector = store.near_vector(ARTICLES, own, limit=1, tenant="faults")
            if not by_vector or by_vector[0].source_id != pmid:
                result.vector_missed.append(pmid)
    result.lost += sorted(set(result.bm25_missed) & set(result.vector_missed))
    result.seconds = round(time.monotonic() - started, 1)
    return result


def _count_after_restart(store: Store) -> int:
    """The object count, after the one call that may meet the dead server (and makes the next one restart it)."""
    with contextlib.suppress(StoreError):
        return store.count(ARTICLES, tenant="faults")
    return store.count(ARTICLES, tenant="faults")


@dataclasses.dataclass
class QueryFault:
    """One request made while the server died or hung: how long until the error, and what it said."""

    name: str
    seconds: float
    error: str
    clear: bool
    """The error names the server (its URL or its log) and says what to do."""
    next_query: str = "not tried"
    """"ok" when the next request through the same Store succeeded after the server came back and, once the vector
    index was repaired, returned the right object."""
    lost_from_vector_index: int = 0
    """Objects the kill took out of the vector index (kept in the object store): what ``repair_indexes``
    rewrote."""


def _synthetic(count: int) -> list[Record]:
    return [Record(f"q-{i}", {"text": f"chest radiograph {planted_token(str(i))}"},
                   {TEXT_VECTOR: HashingEncoder().encode([str(i)])[0].tolist()}) for i in range(count)]


def _timed(call: Callable[[], object]) -> tuple[float, BaseException | None]:
    started = time.monotonic()
    try:
        call()
    except Exception as error:  # the scenario measures whatever comes out; the caller judges it
        return time.monotonic() - started, error
    return time.monotonic() - started, None


def _clear(error: BaseException | None, *names: str) -> bool:
    """A medrag StoreError that names one of ``names`` (the URL, the log) and a way out."""
    text = str(error)
    return (isinstance(error, StoreError) and any(name in text for name in names)
            and any(fix in text for fix in ("next call", "MEDRAG_WEAVIATE", "open the store")))


def kill_during_query(config: Config, work: Path) -> list[QueryFault]:
    """A query in flight when the embedded server is killed; a query to a hung (stopped) server; the next query of
    the same Store after each; and a query to an external URL whose server was killed."""
    faults = []
    settings = isolated(config, work / "embedded", timeout=QUERY_TIMEOUT)
    with Store.open(settings, log=lambda _: None) as store:
        store.ensure_schema()
        store.create_tenant()
        store.upsert(ARTICLES, _synthetic(50))
        probe = HashingEncoder().encode(["7"])[0]

        def search() -> object:
            return store.near_vector(ARTICLES, probe, limit=1)

        # In flight: the server is frozen so the request is sent and waits, then it is killed under it.
        server = store.server
        assert server is not None and server.pid is not None
        freeze(server.pid)
        outcome: dict[str, tuple[float, BaseException | None]] = {}
        worker = threading.Thread(target=lambda: outcome.update(result=_timed(search)))
        worker.start()
        time.sleep(0.5)
        killed = time.monotonic()
        server.kill()
        worker.join(settings.weaviate.timeout * 10)
        seconds, error = outcome.get("result", (float("inf"), None))
        fault = QueryFault("killed in flight", round(time.monotonic() - killed if error else seconds, 2),
                           str(error), _clear(error, str(server.log_path), store.url))
        fault.next_query, fault.lost_from_vector_index = _next_query(store, search, probe_id="q-7")
        faults.append(fault)

        # Hung: the process is alive and holds its sockets, but answers nothing (a frozen VM, a stuck disk).
        server = store.server
        assert server is not None and server.pid is not None
        freeze(server.pid)
        try:
            seconds, error = _timed(search)
        finally:
            os.kill(server.pid, signal.SIGCONT)
        fault = QueryFault("server hung", round(seconds, 2), str(error), _clear(error, store.url))
        fault.next_query, fault.lost_from_vector_index = _next_query(store, search, probe_id="q-7")
        faults.append(fault)
    faults.append(_external_kill(config, work / "external"))
    return faults


def freeze(pid: int, wait: float = 5.0) -> None:
    """SIGSTOP and wait until every thread has stopped: ``kill`` returns before a busy process is frozen, and a
    request sent in that moment is still answered."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if all(_thread_state(task) in "Tt" for task in Path(f"/proc/{pid}/task").iterdir()):
            return
        time.sleep(0.01)


def _thread_state(task: Path) -> str:
    """One thread's state letter from /proc ("T": stopped); a thread that just ended counts as stopped."""
    try:
        return (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return "T"


def _next_query(store: Store, search: Callable[[], Any], probe_id: str) -> tuple[str, int]:
    """The first request after a fault, through the same Store (it restarts a dead embedded server and reconnects on
    this call; no failure more is allowed), then the vector-index repair after an unclean stop and the request again:
    ("ok" when it returns the right object, the objects the repair rewrote)."""
    try:
        hits = search()
    except StoreError as error:
        return f"failed: {str(error).splitlines()[0][:200]}", 0
    lost = len(store.repair_indexes(ARTICLES)) if store.check_indexes else 0
    hits = search() if lost else hits
    return ("ok" if hits and hits[0].source_id == probe_id else f"wrong result: {hits}"), lost


def _external_kill(config: Config, work: Path) -> QueryFault:
    """MEDRAG_WEAVIATE_URL mode: the server is not ours to restart, so the error must come fast and name the URL."""
    from medrag.store.binary import find_binary
    from medrag.store.server import EmbeddedServer

    binary = find_binary(config)
    if binary is None:
        raise ServerStartError("no weaviate-server binary: run `make setup` (or set MEDRAG_WEAVIATE_BIN)")
    with EmbeddedServer(binary.path, work / "weaviate") as server:
        external = config.replace(home=work, weaviate={"url": server.url, "api_key": server.api_key,
                                                       "grpc_port": server.grpc_port, "timeout": QUERY_TIMEOUT,
                                                       "key_file": None})
        with Store.open(external) as store:
            store.ensure_schema()
            store.create_tenant()
            store.upsert(ARTICLES, _synthetic(10))
            server.kill()
            seconds, error = _timed(lambda: store.count(ARTICLES))
    return QueryFault("external server killed", round(seconds, 2), str(error), _clear(error, server.url))


@dataclasses.dataclass
class ClearError:
    """One broken file or directory and the error medrag gave for it."""

    name: str
    error: str
    clear: bool
    """Raised as medrag's own error type, naming the path and the setting or command that fixes it."""


def _expect(name: str, call: Callable[[], object], kind: type[BaseException], path: Path, fix: str) -> ClearError:
    try:
        call()
    except kind as error:
        return ClearError(name, str(error), str(path) in str(error) and fix in str(error))
    except Exception as error:  # anything else is the unclear error this check exists to catch
        return ClearError(name, f"{type(error).__name__}: {error}", False)
    return ClearError(name, "no error", False)


@contextlib.contextmanager
def tmpfs(folder: Path, options: str) -> Iterator[bool]:
    """A tmpfs mounted on ``folder`` (root only): True when it is mounted, False where mounting is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                             capture_output=True).returncode == 0
    try:
        yield mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def full_disk(config: Config, work: Path) -> ClearError | None:
    """Fill a 16 MiB data disk until Weaviate refuses writes (it turns read-only at 90 %); None where mounting a small
    tmpfs is not allowed (not root)."""
    folder = work / "full"
    with tmpfs(folder, "size=16m") as mounted:
        if not mounted:
            return None
        data_dir = folder / "weaviate"
        with Store.open(isolated(config, work / "full-home", data_dir=data_dir, batch_size=20),
                        log=lambda _: None) as store:
            store.ensure_schema()
            store.create_tenant()
            filler = "lorem ipsum dolor " * 6000
            for round_ in range(60):
                records = [Record(f"fill-{round_}-{i}", {"text": filler}, {TEXT_VECTOR: [1.0, 0.0]}) for i in range(20)]
                check = _expect("full data disk", lambda records=records: store.upsert(ARTICLES, records), ImportFailed,
                                data_dir, "MEDRAG_WEAVIATE_DATA_DIR")
                if check.error != "no error":
                    return check
    return ClearError("full data disk", "no error after 60 batches of 2 MB", False)


def _damaged_copy(source: Path, target: Path, name: str, damage: Callable[[Path], None]) -> Path:
    shutil.copytree(source, target)
    damage(target / name)
    return target


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _garble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[: min(64, len(data))] = bytes(range(min(64, len(data))))
    path.write_bytes(bytes(data))


def clear_errors(config: Config, work: Path) -> list[ClearError]:
    """Each broken file or directory gives one error naming it and the fix."""
    checks = []
    readonly = work / "readonly"
    with tmpfs(readonly, "ro,size=1m") as mounted:
        if mounted:
            checks.append(_expect("read-only data dir", lambda: Store.open(isolated(config, work, data_dir=readonly),
                                                                             log=lambda _: None),
                                  ServerStartError, readonly, "MEDRAG_WEAVIATE_DATA_DIR"))
    filled = full_disk(config, work)
    checks += [filled] if filled else []
    checks.append(_expect("truncated fusion weights", lambda: FusionReranker.load(_damaged_copy(
        FUSION_CHECKPOINT, work / "fusion-cut", CHECKPOINT_WEIGHTS, _truncate)), CorruptFusion,
        work / "fusion-cut" / CHECKPOINT_WEIGHTS, "medrag train fusion"))
    checks.append(_expect("garbled fusion config", lambda: FusionReranker.load(_damaged_copy(
        FUSION_CHECKPOINT, work / "fusion-garbled", CHECKPOINT_CONFIG, _garble)), CorruptFusion,
        work / "fusion-garbled" / CHECKPOINT_CONFIG, "medrag train fusion"))
    checks.append(_expect("truncated joint weights", lambda: JointEncoder.load(_damaged_copy(
        JOINT_CHECKPOINT, work / "joint-cut", PARTIAL_WEIGHTS, _truncate)), CorruptCheckpoint,
        work / "joint-cut" / PARTIAL_WEIGHTS, "medrag train joint"))
    missing = work / "keys" / "deid.key"
    checks.append(_expect("missing de-identification key", lambda: deid_key(config.replace(deid_key_file=missing)),
                          DeidKeyError, missing, "MEDRAG_DEID_KEY_FILE"))
    unreadable = work / "keys" / "directory.key"
    unreadable.mkdir(parents=True)  # root reads any file whatever its mode; a directory is unreadable as a key
    checks.append(_expect("unreadable de-identification key",
                          lambda: deid_key(config.replace(deid_key_file=unreadable)), DeidKeyError, unreadable,
                          "MEDRAG_DEID_KEY_FILE"))
    empty = work / "keys" / "empty.key"
    empty.write_text("\n")
    checks.append(_expect("empty de-identification key", lambda: deid_key(config.replace(deid_key_file=empty)),
                          DeidKeyError, empty, "backup"))
    return checks


def run(config: Config, out_dir: Path, quick: bool) -> dict[str, Any]:
    """Every scenario on its own servers in a temporary directory; ``quick``: 2 kills over 120 abstracts, else 5
    over 400."""
    with tempfile.TemporaryDirectory(prefix="medrag-faults-") as scratch:
        work = Path(scratch)
        ingest = kill_during_ingest(config, work / "ingest", kills=2 if quick else 5, records=120 if quick else 400)
        queries = kill_during_query(config, work / "query")
        errors = clear_errors(config, work / "errors")
    bound = QUERY_TIMEOUT + QUERY_MARGIN
    slowest = max(fault.seconds for fault in queries)
    next_queries = [fault.next_query for fault in queries if fault.next_query != "not tried"]
    headline = {
        "kills during ingest": ingest.kills,
        "objects lost": len(ingest.lost),
        "BM25/vector disagreements": ingest.disagreements,
        "query-during-kill: seconds to clear error (max)": slowest,
        "next query after restart": "ok" if all(result == "ok" for result in next_queries) else "; ".join(next_queries),
        "vector-index entries lost by a kill (repaired)": sum(fault.lost_from_vector_index for fault in queries),
        "clear errors (read-only dir, full disk, corrupt checkpoint, missing key)":
            f"{sum(check.clear for check in errors)}/{len(errors)}",
    }
    passed = (ingest.passed and all(fault.clear and fault.seconds < bound for fault in queries)
              and headline["next query after restart"] == "ok" and all(check.clear for check in errors))
    return {"headline": headline, "passed": passed, "query bound (s)": bound,
            "ingest": dataclasses.asdict(ingest) | {"disagreements": ingest.disagreements, "passed": ingest.passed},
            "queries": [dataclasses.asdict(fault) for fault in queries],
            "errors": [dataclasses.asdict(check) for check in errors]}


register_suite("faults", run)
