"""Ingestion: loader -> de-identify and prepare -> encode in batches -> upsert, with a summary.

Streaming and bounded: records flow through in batches, so memory stays flat on large inputs.
Idempotent and resumable: ids are deterministic and each object stores a hash of its content and
encoders, so a re-run (also after kill -9) skips what is already stored and writes only the rest.
Reports (their text) and imaging cases (their image) also get the ``joint`` vector of the image-text
space when a joint model is available; articles stay text-only. Every object also stores the text
vector of each of its ``sentences`` (``sentence_vectors``, float16) for the fusion reranker.
One bad record is reported with its file, record and reason; the run goes on.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import json
import logging
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from knowledge_sources.records import Problem, SourceRecord
from medrag.config import Config
from medrag.deid.dicom import DicomDeidentifier
from medrag.deid.secrets import deid_key
from medrag.deid.text import TextScrubber
from medrag.encode.joint import JointEncoder
from medrag.encode.text import TextEncoder
from medrag.imaging.radiograph import NotARadiograph
from medrag.sources import ARTICLES, CASES, REPORTS, KnowledgeSource, PrepareContext, Prepared, get_source
from medrag.store import Record, Store
from medrag.vectors import JOINT_VECTOR, SENTENCE_VECTORS, TEXT_VECTOR, pack_vectors

Loaded = SourceRecord | Problem
SENTENCE_VECTORS_MARK = "sentence-vectors:v1"
"""Part of every content hash: bump it when how ``sentence_vectors`` are made changes, and re-ingest re-encodes."""

log = logging.getLogger(__name__)


@dataclasses.dataclass
class IngestSummary:
    """What one ingestion run did; ``ok`` is False when any record failed (skips are not failures)."""

    collection: str
    read: int = 0
    written: int = 0
    unchanged: int = 0
    added: int = 0
    """Objects new to the collection (the rest of ``written`` replaced older versions)."""
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    failed: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"ok": self.ok}

    def render(self, most: int = 20) -> str:
        lines = [
            f"{self.collection}: read {self.read}, ingested {self.written} ({self.added} new), "
            f"unchanged {self.unchanged}, skipped {len(self.skipped)}, failed {len(self.failed)}"
        ]
        for title, items in (("skipped", self.skipped), ("failed", self.failed)):
            lines += [f"  {title}: {origin}: {reason}" for origin, reason in items[:most]]
            if len(items) > most:
                lines.append(f"  ... and {len(items) - most} more {title} (see --report)")
        return "\n".join(lines)


def _batches(items: Iterable[Loaded], size: int) -> Iterator[list[Loaded]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


class Ingestor:
    """Ingests knowledge sources into one tenant. Models load once; call the methods any number of times."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        text_encoder: TextEncoder | None = None,
        joint_encoder: JointEncoder | None = None,
        joint: bool = True,
        tenant: str | None = None,
        batch_size: int = 64,
        progress: bool = True,
        on_progress: Callable[[int, int], None] | None = None,
        allow_burned_in: bool = False,
    ) -> None:
        """``joint_encoder`` default: ``config.joint_model`` when ``joint`` (False: no joint vectors, no model load).
        ``progress`` draws a terminal bar; ``on_progress(done, total)`` is called after each batch (an app's bar)."""
        if joint_encoder is not None and not joint:
            raise ValueError("Ingestor: a joint_encoder was given with joint=False; pass one or the other")
        self.config = config
        self.store = store
        self.text_encoder = text_encoder or TextEncoder(config.text_model)
        self.tenant = tenant or config.weaviate.tenant
        self.batch_size = batch_size
        self.progress = progress
        self.on_progress = on_progress
        key = deid_key(config)
        self.context = PrepareContext(DicomDeidentifier(key, allow_burned_in=allow_burned_in), TextScrubber(),
                                      config.image_dir, self.tenant, config.limits)
        self._preparations: dict[str, Callable[[SourceRecord], Prepared]] = {}
        # Stored with every object: a new encoder changes every hash, so re-ingest re-encodes.
        self.encoder_id = f"{Path(self.text_encoder.model_path).name}:{self.text_encoder.dim}"
        self._load_joint = joint and joint_encoder is None
        self._given_joint = joint_encoder
        store.ensure_schema()
        store.create_tenant(self.tenant)

    @functools.cached_property
    def joint_encoder(self) -> JointEncoder | None:
        """Loaded on first use: ingesting articles alone never pays for the image tower."""
        return _configured_joint_encoder(self.config) if self._load_joint else self._given_joint

    @functools.cached_property
    def joint_id(self) -> str | None:
        return f"{self.joint_encoder.source}:{self.joint_encoder.dim}" if self.joint_encoder else None

    def ingest(self, collection: str, paths: Iterable[Path], **options: Any) -> IngestSummary:
        """Files or folders into any registered knowledge source; ``options`` (e.g. ``mapping``) go to its loader.

        A loader that takes ``limits`` gets the configured ``LimitsConfig`` (file size, text values, nesting), so
        ``MEDRAG_LIMITS_*`` reaches the readers; loaders registered without that parameter are called as before."""
        source = get_source(collection)
        paths = list(paths)
        if "limits" in inspect.signature(source.load).parameters:
            options = {"limits": self.config.limits, **options}
        return self._run(collection, lambda: source.load(paths, **options), self._preparation(source))

    def pubmed(self, paths: Iterable[Path], mapping: str | Path | None = None) -> IngestSummary:
        """MEDLINE/PubMed XML, PubTator and PubMedQA JSON files or folders."""
        return self.ingest(ARTICLES, paths, mapping=mapping)

    def reports(self, paths: Iterable[Path], mapping: str | Path | None = None) -> IngestSummary:
        """Open-i/IU ecgen XML (also inside the .tgz) and CSV exports."""
        return self.ingest(REPORTS, paths, mapping=mapping)

    def images(self, paths: Iterable[Path], notes: Path | None = None,
               mapping: str | Path | None = None) -> IngestSummary:
        """DICOM files or folders, PNG/JPEG images, and image+note CSVs.

        ``mapping`` maps the notes CSV when ``notes`` is given, else the image+note tables in ``paths``.
        """
        mappings = {"notes_mapping": mapping} if notes else {"mapping": mapping}
        return self.ingest(CASES, paths, notes=notes, **mappings)

    def _preparation(self, source: KnowledgeSource) -> Callable[[SourceRecord], Prepared]:
        """The source's record -> object function for this ingestor's tenant and de-identifiers, built once."""
        if source.collection not in self._preparations:
            self._preparations[source.collection] = source.prepare(self.context)
        return self._preparations[source.collection]

    def _run(self, collection: str, load: Callable[[], Iterable[Loaded]],
             prepare: Callable[[SourceRecord], Prepared]) -> IngestSummary:
        summary = IngestSummary(collection)
        before = self.store.count(collection, tenant=self.tenant)
        # Counting first costs one cheap parse and buys an ETA on the progress bar.
        total = sum(1 for _ in load()) if self.progress or self.on_progress else None
        with tqdm(total=total, desc=f"ingest {collection}", unit="rec", disable=not self.progress) as bar:
            for batch in _batches(load(), self.batch_size):
                prepared = [item for loaded in batch if (item := self._prepare(loaded, prepare, summary))]
                self._write(collection, prepared, summary)
                summary.read += len(batch)
                bar.update(len(batch))
                if self.on_progress:
                    self.on_progress(summary.read, max(total or 0, summary.read))
        summary.added = self.store.count(collection, tenant=self.tenant) - before
        return summary

    @staticmethod
    def _prepare(loaded: Loaded, prepare: Callable[[SourceRecord], Prepared],
                 summary: IngestSummary) -> Prepared | None:
        if isinstance(loaded, Problem):
            (summary.skipped if loaded.skipped else summary.failed).append((loaded.origin, loaded.detail()))
            return None
        try:
            return prepare(loaded)
        except NotARadiograph as reason:
            summary.skipped.append((loaded.origin, str(reason)))
        except Exception as error:  # one bad record must not stop the run; it is reported with its origin
            summary.failed.append((loaded.origin, str(error).removeprefix(f"{loaded.origin}: ")))
        return None

    def _content_hash(self, item: Prepared) -> str:
        # The joint model is part of the hash only where it encodes: a new one re-encodes reports and cases,
        # never the (many) articles.
        # "sentence-vectors:v1": objects stored before sentence vectors existed hash differently and are re-encoded.
        encoders = [self.encoder_id, SENTENCE_VECTORS_MARK]
        if get_source(item.collection).joint and self.joint_id:
            encoders.append(self.joint_id)
        payload = json.dumps([*encoders, item.properties], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode()).hexdigest()

    def _joint_vectors(self, collection: str, items: list[Prepared]) -> np.ndarray | None:
        """One batched joint encoding: report texts, case images; ``None`` where there is no joint vector."""
        joint = get_source(collection).joint
        if joint is None or self.joint_encoder is None:
            return None
        if joint == "text":
            return self.joint_encoder.encode_texts([item.text for item in items])
        images = [item.image for item in items if item.image is not None]
        if len(images) != len(items):
            raise ValueError(f"{collection}: a prepared case has no image to encode")
        return self.joint_encoder.encode_images(images)

    def _sentence_vectors(self, items: list[Prepared]) -> list[np.ndarray]:
        """Per item, the text vectors of its ``sentences`` (row i = sentence i): all items in one encoder batch."""
        counts = [len(item.properties["sentences"]) for item in items]
        every = self.text_encoder.encode([sentence for item in items for sentence in item.properties["sentences"]])
        return np.split(every.reshape(-1, self.text_encoder.dim), np.cumsum(counts)[:-1])

    def _write(self, collection: str, prepared: list[Prepared], summary: IngestSummary) -> None:
        latest = {item.source_id: item for item in prepared}  # the same id twice in a batch: last one wins
        hashes = {source_id: self._content_hash(item) for source_id, item in latest.items()}
        stored = self.store.stored_hashes(collection, list(latest), tenant=self.tenant)
        changed = [item for source_id, item in latest.items() if stored.get(source_id) != hashes[source_id]]
        if self.store.check_indexes:
            # After a crash an object can be stored yet missing from its id index (then it looks absent here, and an
            # upsert would not re-index it) or from its vector index: delete such objects and write them again.
            lost = self.store.unindexed(collection, list(latest), tenant=self.tenant)
            self.store.delete(collection, lost, tenant=self.tenant)
            changed += [latest[source_id] for source_id in lost if stored.get(source_id) == hashes[source_id]]
        summary.unchanged += len(prepared) - len(changed)
        if not changed:
            return
        vectors = [{TEXT_VECTOR: vector} for vector in self.text_encoder.encode([item.text for item in changed])]
        joint = self._joint_vectors(collection, changed)
        if joint is not None:
            vectors = [named | {JOINT_VECTOR: vector} for named, vector in zip(vectors, joint, strict=True)]
        sentence_vectors = self._sentence_vectors(changed)
        records = [
            Record(item.source_id, {**item.properties, "content_hash": hashes[item.source_id],
                                    SENTENCE_VECTORS: pack_vectors(matrix)}, named)
            for item, named, matrix in zip(changed, vectors, sentence_vectors, strict=True)
        ]
        report = self.store.upsert(collection, records, tenant=self.tenant, raise_on_failure=False)
        summary.written += report.written
        summary.failed += [(source_id, f"rejected by Weaviate: {reason}") for source_id, reason in report.failures]


def _configured_joint_encoder(config: Config) -> JointEncoder | None:
    """``config.joint_model``; without one configured and no committed checkpoint yet, no joint vectors."""
    try:
        return JointEncoder.load(config.joint_model)
    except FileNotFoundError as error:
        if config.joint_model is not None:  # the user named a model: a missing one is their error to fix
            raise
        log.warning("ingesting without joint (image-text) vectors: %s", error)
        return None
