"""Persisted-artefacts area: the de-identification set goes through the product, then everything it wrote is searched
for the planted values.

The ``deid`` area scores what the de-identifiers return; this one checks what is left on disk afterwards, where a
leak would actually stay: synthetic DICOMs from :func:`~reliability.deid_validation.make_dicom_set` (identifiers in
every value representation, nested sequences, private tags, overlays, the file meta) are ingested as cases, each
with a synthetic clinical note from :func:`~reliability.deid_validation.make_notes` (names, dates, ids, phones,
addresses, ages over 89, institutions, e-mails, URLs), through an :class:`~medrag.assistant.Assistant` on a fresh
home; then questions are asked with notes full of identifiers, so the audit trail is written too. Searched, case
insensitively, for every planted value: every file under the home (Weaviate's object store, indexes, write-ahead
and HNSW commit logs and its log; the image store; the audit trail; the de-identification key) and everything
medrag logged at any level. Required: 0 hits. As a control, the same search must find the values in the inputs.

What is not searched, and why: DICOM dates and times (a patient's shifted date can equal another patient's real date
by chance, which reveals nothing: ``tests/ingest/test_phi_leaks.py`` checks each patient's own dates against its own
objects); values of 3 characters or fewer (they occur in any binary file); retained attributes (the profile keeps
them). The app's feedback file is checked by ``tests/ui/test_app.py`` (a package above this one writes it); the
browser test's screenshots are pixels, not text.
"""

from __future__ import annotations

import csv
import logging
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pydicom

from medrag.assistant import Assistant
from medrag.config import Config
from reliability import logger_level, register_suite
from reliability.deid_validation import RETAINED, Expectation, SyntheticNote, make_dicom_set, make_notes

UNSEARCHED_VRS = frozenset({"DA", "DT", "TM"})
"""Dates and times: shifted, not removed, so a shifted value may equal another planted one by chance."""
SHORTEST = 4
"""Shorter values (sexes, short codes) occur by chance in any binary file."""
QUESTION = "What does the chest radiograph show, and is there pneumonia?"
KEPT_WORD = "zqxconsolidation"
"""A made-up clinical word added to every note: the scrubber keeps it, so finding it in the Weaviate files and in
the audit trail shows that the search reads the files where the notes' text lands (the other control)."""


def dicom_needles(key: Iterable[Expectation]) -> set[str]:
    """What no artefact may contain from the DICOMs: each identifying attribute's value that the profile does not
    keep (and each part of a person name), lowercased."""
    needles: set[str] = set()
    for expectation in key:
        if expectation.action == RETAINED or expectation.vr in UNSEARCHED_VRS:
            continue
        for text in _texts(expectation.original):
            needles.add(text.lower())
            if "^" in text:  # a person name, also in bytes of private or binary elements
                needles.update(part.lower() for part in text.split("^"))
    return {needle for needle in needles if len(needle) >= SHORTEST}


def _texts(value: Any) -> list[str]:
    """A planted value as the strings a file would hold: each of several values, bytes decoded and unpadded; a
    sequence gives none (its items are planted, and keyed, one by one)."""
    if isinstance(value, bytes):
        return [value.decode("latin-1").strip("\x00 ")]
    if isinstance(value, str | int | float):
        return [str(value).strip()]
    if isinstance(value, pydicom.Sequence):
        return []
    return [text for item in value for text in _texts(item)]


def note_needles(notes: Iterable[SyntheticNote]) -> set[str]:
    """Every identifier planted in the notes, whole, lowercased."""
    return {planted.value.lower() for note in notes for planted in note.planted if len(planted.value) >= SHORTEST}


def files_containing(roots: Iterable[Path], needles: set[str], *, whole_words: bool = True
                     ) -> dict[str, list[str]]:
    """For each file under ``roots`` that holds any needle (bytes, case-insensitively; as a whole word unless
    ``whole_words`` is off): the needles it holds.

    Whole words because Weaviate's files hold base64 blobs (the packed sentence vectors), where any four letters turn
    up by chance ("Paul" was found inside ``...Kz7paUlEKv...``); text, tokens and log lines put a space, quote,
    length byte or punctuation around a name, so a real leak still matches.
    """
    words = {needle: re.compile(rb"(?<![a-z0-9])" + re.escape(needle.encode()) + rb"(?![a-z0-9])")
             for needle in needles}
    hits: dict[str, list[str]] = {}
    for root in roots:
        for path in sorted(root.rglob("*")) if root.is_dir() else [root]:
            if path.is_file():
                content = path.read_bytes().lower()
                found = sorted(needle for needle, word in words.items()
                               if needle.encode() in content and (not whole_words or word.search(content)))
                if found:
                    hits[str(path)] = found
    return hits


@contextmanager
def captured_logs() -> Iterator[list[str]]:
    """Every record logged anywhere during the block, at every level, formatted with its arguments."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    root, handler = logging.getLogger(), Keep(logging.DEBUG)
    root.addHandler(handler)
    try:
        with logger_level(root, logging.DEBUG):
            yield lines
    finally:
        root.removeHandler(handler)


def write_inputs(folder: Path, patients: int, notes: list[SyntheticNote]) -> tuple[Path, Path, set[str]]:
    """The DICOMs (one study of one image per patient) and a notes CSV pairing each with a note; the needles."""
    files, key = make_dicom_set(patients=patients, studies=1, images=1, seed=18)
    incoming = folder / "incoming"
    incoming.mkdir(parents=True)
    for synthetic in files:
        (incoming / synthetic.name).write_bytes(synthetic.data)
    table = folder / "notes.csv"
    with table.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "clinical_notes", "finding"])
        for synthetic, note in zip(files, notes, strict=False):
            writer.writerow([synthetic.name, f"{note.text} {KEPT_WORD}.", "Pneumonia"])
    return incoming, table, dicom_needles(key) | note_needles(notes[:len(files)])


def scan(config: Config, work: Path, *, patients: int, questions: int) -> dict[str, Any]:
    """Ingest, ask, then search every artefact; the figures."""
    notes = make_notes(patients + questions, seed=18)
    incoming, table, needles = write_inputs(work, patients, notes)
    asked = notes[patients:]
    needles |= note_needles(asked)
    home = work / "home"
    settings = config.replace(home=home, weaviate={"url": None, "data_dir": None, "port": None, "api_key": None,
                                                   "key_file": None, "tenant": "artefacts"},
                              audit={"log": None, "enabled": True}, deid_key_file=None)
    with captured_logs() as logged, Assistant.local(settings) as assistant:
        summary = assistant.ingest_images([incoming], notes=table)
        for note in asked:
            assistant.ask(QUESTION, f"{note.text} {KEPT_WORD}.", mode="extractive")
    # In the raw DICOMs a value can touch the next element's tag bytes ("...Thistlecombe.2\x00"): any match counts.
    inputs = files_containing([incoming, table], needles, whole_words=False)
    control = {needle for found in inputs.values() for needle in found}
    control |= {needle for needle in needles if needle in "\n".join(note.text for note in asked).lower()}
    hits = files_containing([home], needles)
    kept = files_containing([home], {KEPT_WORD})
    said = "\n".join([*logged, summary.render()]).lower()
    in_logs = sorted(needle for needle in needles if needle in said)
    audit = settings.audit_log
    return {
        "cases ingested": summary.written, "ingest failures": [reason for _, reason in summary.failed][:5],
        "questions asked": len(asked), "planted values searched": len(needles),
        "found in the inputs (control)": len(control),
        "files searched": sum(1 for path in home.rglob("*") if path.is_file()),
        "audit lines": len(audit.read_text().splitlines()) if audit.exists() else 0,
        "log lines searched": len(logged),
        "files holding the kept word (control)": len(kept),
        "audit trail holds the kept word (control)": str(settings.audit_log) in kept,
        "hits in files": hits, "hits in logs": in_logs,
    }


def run(config: Config, out_dir: Path, quick: bool) -> dict[str, Any]:
    """4 DICOMs and 3 questions when quick, 40 and 20 otherwise, in a temporary home; ``out_dir`` is unused."""
    patients, questions = (4, 3) if quick else (40, 20)
    with tempfile.TemporaryDirectory(prefix="medrag-artefacts-") as folder:
        figures = scan(config, Path(folder), patients=patients, questions=questions)
    leaks = sum(len(found) for found in figures["hits in files"].values()) + len(figures["hits in logs"])
    passed = (leaks == 0 and figures["cases ingested"] == patients and figures["audit lines"] >= questions
              and figures["found in the inputs (control)"] == figures["planted values searched"]
              and figures["files holding the kept word (control)"] > 1
              and figures["audit trail holds the kept word (control)"])
    return {
        "headline": {
            "planted values found in persisted artefacts": leaks,
            "searched": f"{figures['planted values searched']} planted values in {figures['files searched']} files "
                        f"and {figures['log lines searched']} log lines, after {figures['cases ingested']} cases "
                        f"and {figures['questions asked']} questions",
        },
        "passed": passed,
        **figures,
    }


register_suite("artefacts", run)
