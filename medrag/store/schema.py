"""The Weaviate schema, owned by code and written as data.

Three collections, one per kind of knowledge: PubMed articles, radiology reports and imaging cases.
Every object carries its ``source_id`` (PMID, report id, case id), the ``source`` dataset it came
from, a ``text`` property that BM25 searches, its ``sentences`` (for citations) with one text-encoder
vector per sentence in ``sentence_vectors`` (a blob, see ``medrag.store.blobs``), and two vectors
we provide: ``text`` (sentence encoder) and ``joint`` (the image-text space). All collections are
multi-tenant: one tenant per hospital, ``default`` for single-site use.
"""

from __future__ import annotations

import dataclasses

from weaviate.classes.config import DataType, Tokenization

ARTICLES = "PubmedArticle"
REPORTS = "RadiologyReport"
CASES = "ImagingCase"

TEXT_VECTOR = "text"
JOINT_VECTOR = "joint"
VECTORS = (TEXT_VECTOR, JOINT_VECTOR)
SENTENCE_VECTORS = "sentence_vectors"
"""The blob property holding one text-encoder vector per stored sentence."""


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


def _keyword(name: str, description: str = "") -> Field:
    """An exact-match filter field (ids, codes, labels): whole-value tokens, not in BM25."""
    return Field(name, DataType.TEXT, tokenization=Tokenization.FIELD, description=description)


def _prose(name: str, description: str = "") -> Field:
    return Field(name, DataType.TEXT, searchable=True, tokenization=Tokenization.WORD, description=description)


COMMON_FIELDS = (
    _keyword("source_id", "id in the source: PMID, report id, case id"),
    _keyword("source", "dataset or feed the object came from"),
    _prose("text", "the text BM25 searches and the text vector encodes"),
    Field("sentences", DataType.TEXT_ARRAY, description="sentences of the text, 'SECTION: sentence', for citations"),
    Field(SENTENCE_VECTORS, DataType.BLOB,
          description="text-encoder vectors of `sentences`, float16 little-endian, base64; row i = sentence i"),
    Field("year", DataType.INT, description="publication or study year"),
    _keyword("modality", "text, CR, DX, ..."),
    _keyword("content_hash", "hash of what was stored and how it was encoded; unchanged input is skipped"),
)

_ARRAY = {"kind": DataType.TEXT_ARRAY, "tokenization": Tokenization.FIELD}

COLLECTIONS: dict[str, CollectionSpec] = {
    spec.name: spec
    for spec in (
        CollectionSpec(ARTICLES, "PubMed articles: title, abstract with section labels, MeSH", (
            *COMMON_FIELDS,
            _prose("title"),
            _keyword("journal"),
            Field("mesh", **_ARRAY),
            Field("publication_types", **_ARRAY),
        )),
        CollectionSpec(REPORTS, "Radiology reports with their sections", (
            *COMMON_FIELDS,
            _prose("indication"),
            _prose("comparison"),
            _prose("findings"),
            _prose("impression"),
            Field("mesh", **_ARRAY),
            Field("image_ids", **_ARRAY),
        )),
        CollectionSpec(CASES, "Imaging cases: a de-identified image with its clinical note and finding", (
            *COMMON_FIELDS,
            _prose("note"),
            _keyword("finding"),
            _keyword("view"),
            _keyword("body_part"),
            _keyword("sex"),
            Field("age", DataType.INT),
            _keyword("image_ref", "where the de-identified image is kept"),
            _keyword("patient_key", "salted pseudonym of the patient: links a patient's images, never the identity"),
            _keyword("license"),
        )),
    )
}
