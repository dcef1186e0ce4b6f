"""The knowledge-source registry: one declaration per source gives everything the pipeline needs of it.

A ``KnowledgeSource`` names its Weaviate collection and fields (``store`` builds the schema from it), its
loader (files -> records), its preparation (record -> de-identified object), which joint vector it carries
(``ingest`` encodes it, ``retrieve`` searches it with a query image, ``route`` adds it for image queries), how
a reader names it (citations, route explanations), and which built-in source it resembles (so a fusion model
trained before it existed can still read it). Add a source with ``register_source``; see ARCHITECTURE.md.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from knowledge_sources.records import Problem, SourceRecord
from medrag.config import LimitsConfig
from medrag.deid.dicom import DicomDeidentifier
from medrag.deid.text import TextScrubber
from medrag.imaging.radiograph import DEFAULT_LIMITS, Radiograph
from medrag.vectors import SENTENCE_VECTORS

FieldKind = Literal["prose", "keyword", "keywords", "texts", "int", "blob"]
"""prose: text in the BM25 index; keyword: an exact-match filter value; keywords: a list of them; texts: a list
of strings kept for display; int; blob: base64 bytes (sentence vectors)."""


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    kind: FieldKind
    description: str = ""


COMMON_FIELDS = (
    Field("source_id", "keyword", "id in the source: PMID, report id, case id"),
    Field("source", "keyword", "dataset or feed the object came from"),
    Field("text", "prose", "the text BM25 searches and the text vector encodes"),
    Field("sentences", "texts", "sentences of the text, 'SECTION: sentence', for citations"),
    Field(SENTENCE_VECTORS, "blob", "text-encoder vectors of `sentences`, float16 little-endian, base64; row i = "
                                    "sentence i"),
    Field("year", "int", "publication or study year"),
    Field("modality", "keyword", "text, CR, DX, ..."),
    Field("content_hash", "keyword", "hash of what was stored and how it was encoded; unchanged input is skipped"),
)
"""Fields every source has: what retrieval, citations, the fusion module and idempotent ingest rely on."""


@dataclasses.dataclass(frozen=True)
class Prepared:
    """An object ready to encode and store."""

    collection: str
    source_id: str
    properties: dict[str, Any]
    image: Radiograph | None = None
    """The de-identified image, for the joint (image) encoder."""

    @property
    def text(self) -> str:
        return self.properties["text"]


@dataclasses.dataclass(frozen=True)
class PrepareContext:
    """What a preparation may use: the de-identifiers of the deployment and where images are kept."""

    deidentifier: DicomDeidentifier
    scrubber: TextScrubber
    image_dir: Path
    tenant: str
    limits: LimitsConfig = DEFAULT_LIMITS
    """The configured limits on what is read (``[limits]``): file size, pixel count, sequence depth."""


Loader = Callable[..., Iterable[SourceRecord | Problem]]
"""``load(paths, *, mapping=None, **options)``: records and problems, never an exception for one bad record.
A loader with a ``limits`` parameter is given the configured ``medrag.config.LimitsConfig`` by the ingestor."""
Preparation = Callable[[SourceRecord], Prepared]


@dataclasses.dataclass(frozen=True)
class KnowledgeSource:
    collection: str
    """The Weaviate collection (one per source kind), e.g. ``PubmedArticle``."""
    description: str
    label: str
    """How a citation names one item: ``f"{label} {source_id}"`` ("PubMed 17323047")."""
    display: str
    """How a route explanation names the source ("PubMed articles")."""
    fields: tuple[Field, ...]
    """Its own fields, beyond ``COMMON_FIELDS``."""
    load: Loader
    prepare: Callable[[PrepareContext], Preparation]
    """Given the deployment's de-identifiers, the function that turns one record into a stored object."""
    joint: Literal["text", "image"] | None = None
    """What its ``joint`` vector encodes (its text or its image); None: text vectors only. Sources with a joint
    vector are searched with the query image."""
    like: str | None = None
    """A built-in collection it resembles: models trained before this source existed (the fusion module's
    modality bias) treat its items as that one's."""

    @property
    def all_fields(self) -> tuple[Field, ...]:
        return COMMON_FIELDS + self.fields


_SOURCES: dict[str, KnowledgeSource] = {}


def register_source(source: KnowledgeSource, *, replace: bool = False) -> KnowledgeSource:
    """Make ``source`` known to every stage. Re-registering a name needs ``replace=True``."""
    if source.collection in _SOURCES and not replace:
        raise ValueError(f"knowledge source {source.collection!r} is already registered; pass replace=True to "
                         "redefine it")
    clashing = {field.name for field in source.fields} & {field.name for field in COMMON_FIELDS}
    if clashing:
        raise ValueError(f"knowledge source {source.collection!r}: fields {sorted(clashing)} are common to every "
                         "source; remove them from its own fields")
    _SOURCES[source.collection] = source
    return source


def unregister_source(collection: str) -> None:
    """Forget a source (its stored objects stay in Weaviate)."""
    _SOURCES.pop(collection, None)


def get_source(collection: str) -> KnowledgeSource:
    try:
        return _SOURCES[collection]
    except KeyError:
        raise ValueError(f"unknown knowledge source {collection!r}; known: {', '.join(_SOURCES)} "
                         "(register new ones with medrag.sources.register_source)") from None


def registered_sources() -> tuple[KnowledgeSource, ...]:
    return tuple(_SOURCES.values())


def collections() -> tuple[str, ...]:
    """Names of the registered collections, in registration order."""
    return tuple(_SOURCES)


def joint_collections() -> tuple[str, ...]:
    """Collections that carry a ``joint`` vector (searched with a query image)."""
    return tuple(name for name, source in _SOURCES.items() if source.joint)


def citation_label(collection: str, source_id: str) -> str:
    source = _SOURCES.get(collection)
    return f"{source.label if source else collection} {source_id}"


def object_uuid(collection: str, source_id: str) -> str:
    """Deterministic id: the same source record always lands on the same object.

    The UUIDv5 that weaviate-client's ``generate_uuid5(source_id, collection)`` gives, computed with the standard
    library so that preparation (which names kept images by it) needs no Weaviate client.
    """
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{collection}{source_id}"))
