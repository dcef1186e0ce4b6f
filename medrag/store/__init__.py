"""Stage 4, store: one Weaviate collection per registered knowledge source (embedded server by default)."""

from medrag.sources import ARTICLES, CASES, REPORTS, object_uuid
from medrag.store.errors import (
    AccessDenied,
    BinaryNotFound,
    ConnectionFailed,
    ImportFailed,
    ServerStartError,
    StoreError,
    UnknownTenant,
)
from medrag.store.schema import collection_spec, collection_specs
from medrag.store.store import Filters, Hit, ImportReport, Record, Store
from medrag.store.tenants import TenantKey
from medrag.vectors import JOINT_VECTOR, SENTENCE_VECTORS, TEXT_VECTOR, pack_vectors, unpack_vectors

__all__ = [
    "ARTICLES", "CASES", "JOINT_VECTOR", "REPORTS", "SENTENCE_VECTORS", "TEXT_VECTOR",
    "AccessDenied", "BinaryNotFound", "ConnectionFailed", "Filters", "Hit", "ImportFailed", "ImportReport", "Record",
    "ServerStartError", "Store", "StoreError", "TenantKey", "UnknownTenant", "collection_spec", "collection_specs",
    "object_uuid", "pack_vectors", "unpack_vectors",
]
