"""Stage 4, store: Weaviate collections for articles, reports and imaging cases (embedded by default)."""

from medrag.store.blobs import pack_vectors, unpack_vectors
from medrag.store.errors import (
    BinaryNotFound,
    ConnectionFailed,
    ImportFailed,
    ServerStartError,
    StoreError,
    UnknownTenant,
)
from medrag.store.schema import ARTICLES, CASES, COLLECTIONS, JOINT_VECTOR, REPORTS, SENTENCE_VECTORS, TEXT_VECTOR
from medrag.store.store import Filters, Hit, ImportReport, Record, Store, object_uuid

__all__ = [
    "ARTICLES", "CASES", "COLLECTIONS", "JOINT_VECTOR", "REPORTS", "SENTENCE_VECTORS", "TEXT_VECTOR",
    "BinaryNotFound", "ConnectionFailed", "Filters", "Hit", "ImportFailed", "ImportReport", "Record",
    "ServerStartError", "Store", "StoreError", "UnknownTenant", "object_uuid",
    "pack_vectors", "unpack_vectors",
]
