"""What a data folder holds, found by format, and the provenance every report records.

``medrag eval all --data DIR`` must run on any folder of files in the documented formats, under any names:
evaluation sets are kept elsewhere on purpose. So each file is recognised by its content (the fields a reader of
that format needs), never by its name or place, and a report names every input with its sha256, next to the
config, the seeds, the models and the machine that produced it.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import json
import os
import platform
import subprocess
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from medrag.config import Config

SNIFF_BYTES = 64 * 1024
LARGEST_JSON = 200 * 1024 * 1024
"""JSON files above this size are not parsed to find out what they are (none of the formats comes near it)."""


@dataclasses.dataclass
class DataInputs:
    """The evaluation inputs found in a folder, by format. Every list is in path order."""

    pubmedqa: list[Path] = dataclasses.field(default_factory=list)
    """PubMedQA JSON: an object keyed by PMID, each with QUESTION and CONTEXTS."""
    covid_metadata: list[Path] = dataclasses.field(default_factory=list)
    """Image + note CSV (the covid ``metadata.csv`` format: filename, finding, clinical_notes, ...)."""
    vqa_rad: list[Path] = dataclasses.field(default_factory=list)
    """VQA-RAD JSON: a list of {image_name, question, answer, ...}."""
    report_splits: list[Path] = dataclasses.field(default_factory=list)
    """R2Gen ``annotation.json``: {"train": [...], "val": [...], "test": [...]} of studies with ids."""
    reports: list[Path] = dataclasses.field(default_factory=list)
    """IU/Open-i ecgen XML reports: a tarball of them or a folder of .xml files."""
    chexpert_labeller: list[Path] = dataclasses.field(default_factory=list)
    """Folders holding the CheXpert labeller's ``phrases/mention`` and ``patterns``."""

    def paths(self) -> list[Path]:
        """Every input: the files found, the labeller folders, and the image folders beside image datasets."""
        paths = [path for field in dataclasses.fields(self) for path in getattr(self, field.name)]
        images = [path.parent / "images" for path in (*self.covid_metadata, *self.vqa_rad)]
        return [*paths, *dict.fromkeys(folder for folder in images if folder.is_dir())]

    def found(self) -> dict[str, list[str]]:
        return {field.name: [str(path) for path in getattr(self, field.name)] for field in dataclasses.fields(self)}


def _json_kind(path: Path) -> str | None:
    if path.stat().st_size > LARGEST_JSON:
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(data, list) and data and isinstance(data[0], dict) \
            and {"image_name", "question", "answer"} <= data[0].keys():
        return "vqa_rad"
    if not isinstance(data, dict) or not data:
        return None
    if {"train", "test"} <= data.keys() and isinstance(data["test"], list):
        return "report_splits"
    first = next(iter(data.values()))
    if isinstance(first, dict) and {"QUESTION", "CONTEXTS"} <= first.keys():
        return "pubmedqa"
    return None


def _csv_kind(path: Path) -> str | None:
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            header = next(csv.reader([handle.readline()]), [])
    except UnicodeDecodeError:
        return None
    return "covid_metadata" if {"filename", "finding", "clinical_notes"} <= set(header) else None


def _holds_ecgen_xml(path: Path) -> bool:
    """A tarball whose first XML member is an ecgen report (Open-i's format)."""
    try:
        with tarfile.open(path) as archive:
            for member in archive:
                if member.isfile() and member.name.endswith(".xml"):
                    handle = archive.extractfile(member)
                    return handle is not None and b"<eCitation" in handle.read(SNIFF_BYTES)
    except (tarfile.TarError, OSError):
        return False
    return False


def _is_labeller(folder: Path) -> bool:
    return (folder / "phrases" / "mention").is_dir() and (folder / "patterns").is_dir()


def discover(data_dir: Path) -> DataInputs:
    """Every evaluation input under ``data_dir``, recognised by content."""
    root = Path(data_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder; pass --data the folder holding the evaluation files")
    found = DataInputs()
    xml_folders: set[Path] = set()
    for path in sorted(root.rglob("*")):
        if path.is_dir():
            if _is_labeller(path):
                found.chexpert_labeller.append(path)
            continue
        name = path.name.lower()
        kind = None
        if name.endswith(".json"):
            kind = _json_kind(path)
        elif name.endswith(".csv"):
            kind = _csv_kind(path)
        elif name.endswith((".tgz", ".tar.gz", ".tar")):
            kind = "reports" if _holds_ecgen_xml(path) else None
        elif name.endswith(".xml") and path.parent not in xml_folders \
                and b"<eCitation" in path.read_bytes()[:SNIFF_BYTES]:
            xml_folders.add(path.parent)
            kind = "reports"
            path = path.parent
        if kind:
            getattr(found, kind).append(path)
    return found


def sha256(path: Path) -> str:
    """Of a file's bytes; of a folder, over its files' relative names and bytes in name order."""
    digest = hashlib.sha256()
    path = Path(path)
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda handle=handle: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                              cwd=Path(__file__).parent, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def machine() -> dict[str, Any]:
    """Where the figures were measured: speed figures mean nothing without it."""
    memory = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = round(int(line.split()[1]) / 1024**2, 1)
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), cpu)
    return {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu,
            "cores": os.cpu_count(), "memory_gib": memory}


def provenance(config: Config, inputs: Iterable[Path], *, seeds: Mapping[str, int],
               models: Mapping[str, Any]) -> dict[str, Any]:
    """Input hashes, config, seeds, models and machine: what a reader needs to reproduce a report."""
    return {"inputs_sha256": {str(path): sha256(path) for path in inputs},
            "config": _plain(dataclasses.asdict(config)), "seeds": dict(seeds), "models": _plain(dict(models)),
            "machine": machine(), "medrag_commit": _git_commit()}


def _plain(value: Any) -> Any:
    """JSON-ready: paths and tuples as strings and lists."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_plain(item) for item in value]
    return str(value) if isinstance(value, Path) else value
