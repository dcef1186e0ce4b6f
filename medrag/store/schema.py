"""The Weaviate schema, built from the knowledge-source registry (``medrag.sources``).

One collection per registered source. Every object carries its ``source_id`` (PMID, report id, case id),
the ``source`` dataset it came from, a ``text`` property that BM25 searches, its ``sentences`` (for
citations) with one text-encoder vector per sentence in ``sentence_vectors`` (a blob, see
``medrag.vectors``), and two vectors we provide: ``text`` (sentence encoder) and ``joint`` (the image-text
space). All collections are multi-tenant: one tenant per hospital, ``default`` for single-site use.
"""

from __future__ import annotations

import dataclasses

from weaviate.classes.config import DataType, Tokenization

from medrag.sources import get_source, registered_sources
from medrag.sources.registry import Field as SourceField


@dataclasses.dataclass(frozen=True)
class Field:
    name: str
    kind: DataType
    searchable: bool = False
    """Part of the BM25 index."""
    tokenization: Tokenization | None = None
    description: str = ""


@dataclasses.dataclass(frozen=True)
class CollectionSpec:
    name: str
    description: str
    fields: tuple[Field, ...]


_KINDS = {
    # prose is BM25-searched word by word; keywords match whole values (ids, codes, labels) and stay out of BM25.
    "prose": {"kind": DataType.TEXT, "searchable": True, "tokenization": Tokenization.WORD},
    "keyword": {"kind": DataType.TEXT, "tokenization": Tokenization.FIELD},
    "keywords": {"kind": DataType.TEXT_ARRAY, "tokenization": Tokenization.FIELD},
    "texts": {"kind": DataType.TEXT_ARRAY},
    "int": {"kind": DataType.INT},
    "blob": {"kind": DataType.BLOB},
}


def _field(field: SourceField) -> Field:
    return Field(field.name, description=field.description, **_KINDS[field.kind])


def collection_spec(name: str) -> CollectionSpec:
    """The schema of one registered collection; ValueError naming the known ones otherwise."""
    source = get_source(name)
    return CollectionSpec(source.collection, source.description, tuple(_field(f) for f in source.all_fields))


def collection_specs() -> list[CollectionSpec]:
    """The schema of every registered source (read at call time: sources registered later are included)."""
    return [collection_spec(source.collection) for source in registered_sources()]
