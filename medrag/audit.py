"""The audit trail: an append-only, hash-chained JSON-lines log of who asked what and what came back.

A hospital's security review asks, for every request: who asked (``actor``, ``tenant``), when, what (the request
as the pipeline de-identified it, the route and the filters), which sources came back (collection, source id and
object uuid per evidence item), what was answered (text, decision, citations) and by which models. The Assistant
writes one line per request here (``ask``, ``search`` and one line per item of ``ask_batch`` / ``search_batch``),
after the answer or the search result exists.

Never recorded: the caller's raw question or note (only the scrubbed text that the pipeline searched with), the
image or any DICOM header value (only whether an image came), and the message of an error (a failed request
records the error's type only, since messages may quote the input; a failure before de-identification finished
records which inputs were given, not their text).

The chain. Each line is a JSON object with ``seq`` (1, 2, ... across all files), ``prev`` (the ``hash`` of the line
before; 64 zeros for the first line ever) and ``hash``: the sha256 of the line's canonical JSON (sorted keys,
compact separators, UTF-8) without the ``hash`` key, so it covers ``seq`` and ``prev`` too. Changing a line
breaks its hash; removing one leaves a gap in ``seq`` and a ``prev`` that points at nothing; moving one puts
``seq`` out of order. :func:`verify` (``medrag audit verify``) walks the chain and names the file and line of
each break.

Rotation. When the next line would take the file past ``max_bytes`` it is renamed ``audit.jsonl.1`` (an
existing ``.1`` becomes ``.2``, and so on) and a new file starts; its first line's ``prev`` is the hash of the
rotated file's last line, so the chain runs on across files. medrag never deletes rotated files: archive them
whole, since the verifier reports a chain whose start is missing.

Concurrency. Files are created with mode 0600 (``O_APPEND | O_CREAT``); each line is one ``write`` followed by
``fsync``. Reading the last hash, rotating and appending happen under an exclusive ``flock`` on
``audit.jsonl.lock`` (a file that never rotates, so every process locks the same inode), plus one thread lock
per process, so several threads and processes can append to one chain.

What the verifier cannot detect: truncation of the newest lines (the rest of the chain is still consistent),
or a whole log rewritten with recomputed hashes by someone who can write the files. Both are caught only by
comparing with a copy of the head kept elsewhere: ``medrag audit head`` prints the last ``seq`` and ``hash``
for a ticket, a syslog server or a write-once store; a later head must extend it (higher ``seq``, and the old
``seq`` still carrying the old hash).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import fcntl
import getpass
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from medrag.config import Config
from medrag.sources import object_uuid
from medrag.types import Answer, Request, SearchResult

GENESIS = "0" * 64
"""``prev`` of the first line of a chain."""
CHAIN_KEYS = ("seq", "prev", "hash")
"""Keys the log adds to every record; a record may not carry them itself."""
FILE_MODE = 0o600
_TAIL_BLOCK = 64 * 1024
_PROCESS_LOCK = threading.Lock()
"""One lock per process: threads queue here, processes on the ``flock`` of the lock file."""


class AuditError(RuntimeError):
    """The audit log cannot be appended to; the message names the file and the fix."""


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes that are hashed and written: sorted keys, no spaces, UTF-8 (so a re-serialised line compares)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def line_hash(record: Mapping[str, Any]) -> str:
    """sha256 over the canonical JSON of the record without its ``hash`` (``seq`` and ``prev`` included)."""
    return hashlib.sha256(canonical({key: value for key, value in record.items() if key != "hash"})).hexdigest()


@dataclasses.dataclass(frozen=True)
class Head:
    """The newest line of a chain: what to anchor elsewhere (``medrag audit head``)."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"seq {self.seq} sha256 {self.hash}"


def log_files(path: str | Path) -> list[Path]:
    """The log and its rotated files in chain order: ``audit.jsonl.N`` ... ``audit.jsonl.1``, ``audit.jsonl``."""
    path = Path(path)
    pattern = re.compile(rf"{re.escape(path.name)}\.(\d+)")
    numbered = sorted(((int(match.group(1)), sibling) for sibling in path.parent.glob(f"{path.name}.*")
                       if (match := pattern.fullmatch(sibling.name))), reverse=True)
    return [sibling for _, sibling in numbered] + ([path] if path.exists() else [])


class AuditLog:
    """One hash chain in ``path`` and its rotated files; safe to append from several threads and processes."""

    def __init__(self, path: str | Path, max_bytes: int = 10 * 1024 * 1024) -> None:
        if max_bytes < 1:
            raise ValueError(f"audit max_bytes must be positive, got {max_bytes}; fix [audit] max_bytes")
        self.path = Path(path)
        self.max_bytes = max_bytes
        self._lock_path = self.path.with_name(f"{self.path.name}.lock")

    def append(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Write one record as the next line of the chain; returns it with ``seq``, ``prev`` and ``hash``."""
        return self.append_many([record])[0]

    def append_many(self, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Write records as consecutive lines (one ``fsync`` each), holding the lock once for all of them."""
        for record in records:
            if clash := set(CHAIN_KEYS) & set(record):
                raise ValueError(f"an audit record may not set {sorted(clash)}: the log adds them")
        written = []
        with self._locked():
            head = self._head()
            for record in records:
                line = {**record, "seq": head.seq + 1, "prev": head.hash}
                line["hash"] = line_hash(line)
                data = canonical(line) + b"\n"
                size = self.path.stat().st_size if self.path.exists() else 0
                if size and size + len(data) > self.max_bytes:
                    self._rotate()
                self._write(data)
                head = Head(line["seq"], line["hash"])
                written.append(line)
        return written

    def head(self) -> Head:
        """The newest line's ``seq`` and ``hash`` (seq 0 and the genesis hash for an empty log)."""
        with self._locked():
            return self._head()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """The process's thread lock, then the exclusive ``flock`` that other processes take too."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            descriptor = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as error:
            raise AuditError(f"cannot open the audit lock {self._lock_path} ({error.strerror}); make its folder "
                             f"writable by medrag or set [audit] log / MEDRAG_AUDIT_LOG") from None
        try:
            with _PROCESS_LOCK:
                fcntl.flock(descriptor, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(descriptor, fcntl.LOCK_UN)
        finally:
            os.close(descriptor)

    def _head(self) -> Head:
        """The last line of the live file, or of ``.1`` when a rotation left the live file absent or empty."""
        for path in (self.path, self.path.with_name(f"{self.path.name}.1")):
            last = _last_line(path)
            if last is None:
                continue
            try:
                record = json.loads(last)
                return Head(int(record["seq"]), str(record["hash"]))
            except (ValueError, KeyError, TypeError):
                raise AuditError(f"the last line of {path} is not a complete audit record (a crash while writing, "
                                 f"or an edit); run `medrag audit verify {self.path}`, then move {path} aside to "
                                 f"start a new chain (the verifier will show the break)") from None
        return Head(0, GENESIS)

    def _rotate(self) -> None:
        """``audit.jsonl.N`` -> ``.N+1`` from the oldest down, then the live file -> ``.1``; the chain goes on."""
        for path in log_files(self.path):  # oldest first: nothing is renamed onto a file still there
            number = 0 if path == self.path else int(path.name.rsplit(".", 1)[1])
            path.rename(self.path.with_name(f"{self.path.name}.{number + 1}"))
        _fsync_dir(self.path.parent)

    def _write(self, data: bytes) -> None:
        """One append of a whole line, flushed to disk before the request returns."""
        created = not self.path.exists()
        try:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as error:
            raise AuditError(f"cannot open the audit log {self.path} ({error.strerror}); make it writable by "
                             f"medrag or set [audit] log / MEDRAG_AUDIT_LOG") from None
        try:
            if os.fstat(descriptor).st_mode & 0o077:  # made by someone else with a wider mode: tighten it
                os.fchmod(descriptor, FILE_MODE)
            view = memoryview(data)
            while view:
                view = view[os.write(descriptor, view):]
            os.fsync(descriptor)
        except OSError as error:
            raise AuditError(f"cannot write the audit log {self.path} ({error.strerror}); free disk space or fix "
                             f"its permissions: requests fail until their audit line is written") from None
        finally:
            os.close(descriptor)
        if created:
            _fsync_dir(self.path.parent)


def _last_line(path: Path) -> bytes | None:
    """The last line of ``path`` without its newline; None for a missing or empty file. A file that does not end
    in a newline ends in a partial write, which is returned as it is (and fails to parse)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        end = os.fstat(descriptor).st_size
        if end == 0:
            return None
        data = b""
        position = end
        while position > 0:
            step = min(_TAIL_BLOCK, position)
            position -= step
            data = os.pread(descriptor, step, position) + data
            newline = data.rfind(b"\n", 0, len(data) - 1)
            if newline >= 0:
                return data[newline + 1:].removesuffix(b"\n")
        return data.removesuffix(b"\n")
    finally:
        os.close(descriptor)


def _fsync_dir(path: Path) -> None:
    """Make a create or a rename durable: the directory entry is data too."""
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# --- verification ----------------------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Break:
    """One place where the chain does not hold."""

    path: Path
    line: int
    """1-based line number in ``path``."""
    kind: str
    """``changed`` (a line's content does not match its hash, or is no record), ``removed`` (a gap in ``seq``
    or a ``prev`` that matches no line before), ``reordered`` (a line out of ``seq`` order) or ``duplicated``."""
    detail: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}: {self.detail}"


@dataclasses.dataclass(frozen=True)
class Verification:
    files: tuple[Path, ...]
    lines: int
    head: Head | None
    """The newest line (None for an empty log): compare with an anchor kept elsewhere."""
    breaks: tuple[Break, ...]

    @property
    def ok(self) -> bool:
        return not self.breaks

    @property
    def first(self) -> Break | None:
        return self.breaks[0] if self.breaks else None


@dataclasses.dataclass(frozen=True)
class _Entry:
    path: Path
    line: int
    seq: int | None
    """None: the line is not a record."""
    prev: str = ""
    hash: str = ""
    intact: bool = False
    """The content matches the hash."""

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def _entry(path: Path, number: int, raw: bytes) -> _Entry:
    try:
        record = json.loads(raw)
        seq, prev, digest = record["seq"], record["prev"], record["hash"]
    except (ValueError, KeyError, TypeError):
        return _Entry(path, number, None)
    if not (isinstance(seq, int) and isinstance(prev, str) and isinstance(digest, str)):
        return _Entry(path, number, None)
    return _Entry(path, number, seq, prev, digest, line_hash(record) == digest)


def verify(paths: str | Path | Sequence[str | Path]) -> Verification:
    """Walk the chain and report every break, by file and line number.

    ``paths``: the live log (its rotated files are found beside it) or a list of files in chain order, oldest
    first. After a break the walk resynchronises on the line that broke, so one edit gives one break and a swap
    of two lines gives two. It cannot see truncation of the newest lines or a rewrite with recomputed hashes:
    compare ``head`` with an anchor kept elsewhere (see the module docstring).
    """
    files = log_files(paths) if isinstance(paths, (str, Path)) else [Path(path) for path in paths]
    if not files:
        raise FileNotFoundError(f"no audit log at {paths} (nor rotated {paths}.1, ...); give the log's path or set "
                                f"[audit] log / MEDRAG_AUDIT_LOG")
    entries = []
    for path in files:
        with path.open("rb") as handle:
            entries += [_entry(path, number, raw) for number, raw in enumerate(handle, 1)]
    first_at: dict[int, int] = {}
    for index, entry in enumerate(entries):
        if entry.seq is not None:
            first_at.setdefault(entry.seq, index)
    breaks: list[Break] = []
    expected_seq: int | None = 1
    expected_prev: str | None = GENESIS
    before: _Entry | None = None
    head = None
    for index, entry in enumerate(entries):
        if entry.seq is None:
            breaks.append(Break(entry.path, entry.line, "changed", "not a complete audit record (JSON with seq, prev "
                                                                   "and hash)"))
            expected_seq = None if expected_seq is None else expected_seq + 1
            expected_prev = None
            continue
        if not entry.intact:
            breaks.append(Break(entry.path, entry.line, "changed", f"seq {entry.seq}: the content does not match "
                                                                   f"its hash"))
        elif expected_seq is not None and entry.seq < expected_seq:
            if first_at[entry.seq] < index:
                earlier = entries[first_at[entry.seq]]
                breaks.append(Break(entry.path, entry.line, "duplicated", f"seq {entry.seq} is already at "
                                                                          f"{earlier.where}"))
            else:
                breaks.append(Break(entry.path, entry.line, "reordered", f"seq {entry.seq} comes after seq "
                                                                         f"{expected_seq - 1}"))
            continue  # out of place: the chain goes on from the line before it
        elif expected_seq is not None and entry.seq > expected_seq:
            later = [entries[first_at[seq]] for seq in range(expected_seq, entry.seq)
                     if first_at.get(seq, -1) > index]
            if later:
                breaks.append(Break(entry.path, entry.line, "reordered", f"seq {entry.seq} where seq {expected_seq} "
                                                                         f"was expected; seq {later[0].seq} is "
                                                                         f"later, at {later[0].where}"))
            else:
                missing = (f"seq {expected_seq}" if entry.seq == expected_seq + 1
                           else f"seq {expected_seq} to {entry.seq - 1}")
                breaks.append(Break(entry.path, entry.line, "removed", f"{missing} missing before seq {entry.seq}"))
        elif expected_prev is not None and entry.prev != expected_prev:
            cause = (f"does not match the hash of {before.where}: that line was changed and re-hashed, or lines "
                     f"between were removed or replaced" if before else "is not the genesis hash: the lines before "
                     "it were removed")
            breaks.append(Break(entry.path, entry.line, "removed", f"seq {entry.seq}: prev {cause}"))
        expected_seq, expected_prev, before = entry.seq + 1, entry.hash, entry
        head = Head(entry.seq, entry.hash)
    return Verification(tuple(files), len(entries), head, tuple(breaks))


# --- what the Assistant records ----------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Call:
    """The call a request came in: the same for every item of a batch."""

    kind: str
    """``ask``, ``ask_batch``, ``search`` or ``search_batch``."""
    tenant: str
    actor: str | None = None
    """Who asked; None: the trail's default actor."""
    k: int = 10
    filters: Any = None
    """A ``medrag.store.Filters`` (years, sources, modality) or None."""


class AuditTrail:
    """Builds the Assistant's lines from the de-identified request and the result, and appends them."""

    def __init__(self, log: AuditLog, actor: str) -> None:
        self.log = log
        self.actor = actor

    @classmethod
    def from_config(cls, config: Config) -> AuditTrail | None:
        """The configured trail, or None when ``[audit] enabled`` is false."""
        if not config.audit.enabled:
            return None
        return cls(AuditLog(config.audit_log, config.audit.max_bytes), config.audit.actor or _system_user())

    def answers(self, call: Call, answers: Sequence[Answer]) -> list[dict[str, Any]]:
        """One line per answer: the search's lines plus the answer, its decision, its citations and models."""
        return self.log.append_many([
            {**self._searched(call, index, len(answers), answer.search), "models": answer.models,
             "answer": {"text": answer.text, "mode": answer.mode, "insufficient": answer.insufficient,
                        "decision": None if answer.decision is None else
                        {"label": answer.decision.label, "confidence": round(answer.decision.confidence, 4),
                         "abstained": answer.decision.abstained},
                        "citations": [{"number": citation.number, "collection": citation.collection,
                                       "source_id": citation.source_id} for citation in answer.citations]}}
            for index, answer in enumerate(answers)])

    def searches(self, call: Call, results: Sequence[SearchResult],
                 models: Sequence[Mapping[str, str]]) -> list[dict[str, Any]]:
        """One line per search result, with the models that searched (``Assistant.models(result)``)."""
        return self.log.append_many([{**self._searched(call, index, len(results), result), "models": dict(names)}
                                     for index, (result, names) in enumerate(zip(results, models, strict=True))])

    def failure(self, call: Call, requests: Sequence[Request | Mapping[str, Any]],
                error: BaseException) -> list[dict[str, Any]]:
        """One line per request of a call that raised: which inputs were given and the error's type, no text
        (the failure may have come before de-identification, and messages may quote the input)."""
        return self.log.append_many([
            {**self._common(call, index, len(requests)), "request": {"given": _given(request)},
             "error": type(error).__name__} for index, request in enumerate(requests)])

    def _common(self, call: Call, index: int, items: int) -> dict[str, Any]:
        filters = dataclasses.asdict(call.filters) if dataclasses.is_dataclass(call.filters) else None
        return {"time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"), "kind": call.kind,
                "tenant": call.tenant, "actor": call.actor or self.actor, "item": index + 1, "items": items,
                "k": call.k, "filters": filters}

    def _searched(self, call: Call, index: int, items: int, result: SearchResult) -> dict[str, Any]:
        query = result.query
        return {**self._common(call, index, items),
                "request": {"question": query.question, "note": query.note, "image": query.image is not None,
                            "scrubbed": dict(query.scrubbed)},
                "route": {"intent": result.route.intent, "sources": [s.collection for s in result.route.searches],
                          "image_search": result.route.image_search, "rules": list(result.route.rules)},
                "evidence": [{"collection": item.collection, "source_id": item.source_id,
                              "uuid": object_uuid(item.collection, item.source_id)} for item in result.evidence]}


def _given(request: Request | Mapping[str, Any]) -> list[str]:
    """Which of question, note and image a raw request carries (names only: the values are not de-identified)."""
    if isinstance(request, Request):
        values: Mapping[str, Any] = {"question": request.question, "note": request.note, "image": request.image}
    elif isinstance(request, Mapping):
        values = request
    else:
        return []
    return [name for name in ("question", "note", "image")
            if values.get(name) is not None and not (isinstance(values[name], str) and not values[name].strip())]


def _system_user() -> str:
    """The operating-system user running medrag: the actor when neither the call nor the config names one."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (some containers)
        return f"uid {os.getuid()}"
