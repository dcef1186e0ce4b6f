"""The vector store: schema, idempotent upserts and searches over Weaviate.

``Store.open(config)`` connects to ``MEDRAG_WEAVIATE_URL`` or starts the embedded server. Objects
get deterministic UUIDv5 ids from their source id, so re-ingesting the same input never
duplicates. Every write reports each rejected object; nothing is dropped silently.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

import weaviate
from weaviate.classes.config import Configure, Property
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter, MetadataQuery
from weaviate.classes.tenants import Tenant
from weaviate.exceptions import WeaviateBaseError, WeaviateInsertManyAllFailedError

from medrag.config import Config
from medrag.sources import collections as registered_collections
from medrag.sources import object_uuid
from medrag.store.connection import connect_client, start_embedded
from medrag.store.errors import ImportFailed, StoreError, UnknownTenant
from medrag.store.schema import CollectionSpec, collection_spec, collection_specs
from medrag.store.server import EmbeddedServer
from medrag.vectors import VECTORS


@dataclasses.dataclass(frozen=True)
class Record:
    """One object to write: its id in the source, its properties and the vectors we computed."""

    source_id: str
    properties: Mapping[str, Any]
    vectors: Mapping[str, Sequence[float]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Hit:
    collection: str
    source_id: str
    uuid: str
    properties: dict[str, Any]
    score: float | None = None
    """Hybrid/BM25 score (higher is better)."""
    distance: float | None = None
    """Vector distance (lower is better)."""


@dataclasses.dataclass(frozen=True)
class Filters:
    """Search filters; unset fields do not filter."""

    source: str | Sequence[str] | None = None
    year_from: int | None = None
    year_to: int | None = None
    modality: str | Sequence[str] | None = None

    def to_weaviate(self) -> Any:
        parts = []
        for name, value in (("source", self.source), ("modality", self.modality)):
            if value is not None:
                values = [value] if isinstance(value, str) else list(value)
                parts.append(Filter.by_property(name).contains_any(values))
        if self.year_from is not None:
            parts.append(Filter.by_property("year").greater_or_equal(self.year_from))
        if self.year_to is not None:
            parts.append(Filter.by_property("year").less_or_equal(self.year_to))
        return Filter.all_of(parts) if len(parts) > 1 else (parts[0] if parts else None)


@dataclasses.dataclass
class ImportReport:
    collection: str
    written: int = 0
    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def _chunks(items: Iterable[Record], size: int) -> Iterator[list[Record]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class Store:
    """A connection to Weaviate plus the embedded server behind it, if we started one."""

    def __init__(self, client: weaviate.WeaviateClient, config: Config, server: EmbeddedServer | None = None):
        self.client = client
        self.config = config
        self.server = server
        self.write_listeners: list[Callable[[str, str], None]] = []
        """Called with (collection, tenant) after each acknowledged write, e.g. to invalidate caches."""
        self._returned: dict[str, list[str]] = {}
        """Per collection, the schema fields the server has: what searches and fetches return."""

    @classmethod
    def open(cls, config: Config, log: Callable[[str], None] = print) -> Store:
        """Connect to the configured external Weaviate, or start the embedded one."""
        settings = config.weaviate
        if settings.url:
            client = connect_client(settings.url, settings.api_key, config, grpc_host=settings.grpc_host,
                                    grpc_port=settings.grpc_port, secure=settings.secure)
            return cls(client, config)
        server = start_embedded(config, log)
        try:
            client = connect_client(server.url, server.api_key, config, grpc_port=server.grpc_port)
        except BaseException:
            server.stop()
            raise
        return cls(client, config, server)

    @property
    def url(self) -> str:
        return self.server.url if self.server else str(self.config.weaviate.url)

    def close(self) -> None:
        self.client.close()
        if self.server is not None:
            self.server.stop()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _guard(self, action: str, collection: str | None = None, tenant: str | None = None) -> Iterator[None]:
        """Turn client errors into one message naming the cause and the fix."""
        # A dead embedded server is known at once; asking the client would mean minutes of retries.
        self._raise_if_server_gone(action)
        try:
            yield
        except WeaviateBaseError as error:
            self._raise_if_server_gone(action)
            if collection and tenant and tenant not in self.tenants(collection):
                raise UnknownTenant(
                    f"tenant {tenant!r} does not exist in {collection}; known: "
                    f"{', '.join(sorted(self.tenants(collection))) or 'none'}. Create it with "
                    "Store.create_tenant or ingest with --tenant"
                ) from None
            raise StoreError(f"{action} failed on Weaviate at {self.url}: {error}") from None

    def _raise_if_server_gone(self, action: str) -> None:
        reason = self.server.exit_reason() if self.server is not None else None
        if reason:
            raise StoreError(
                f"{action} failed: the embedded Weaviate server is gone. {reason}\n"
                "Open the store again to restart it; if it keeps dying, read the log"
            )

    # --- schema -------------------------------------------------------------------------------

    def ensure_schema(self, specs: Iterable[CollectionSpec] | None = None) -> None:
        """Create missing collections (default: every registered source) and add missing properties; existing data
        is untouched."""
        with self._guard("creating the schema"):
            for spec in collection_specs() if specs is None else specs:
                properties = [
                    Property(name=field.name, data_type=field.kind, description=field.description or None,
                             index_searchable=field.searchable, tokenization=field.tokenization)
                    for field in spec.fields
                ]
                if not self.client.collections.exists(spec.name):
                    self.client.collections.create(
                        spec.name,
                        description=spec.description,
                        properties=properties,
                        vector_config=[Configure.Vectors.self_provided(name=name) for name in VECTORS],
                        multi_tenancy_config=Configure.multi_tenancy(
                            enabled=True, auto_tenant_creation=False, auto_tenant_activation=True
                        ),
                    )
                    continue
                collection = self.client.collections.use(spec.name)
                existing = {prop.name for prop in collection.config.get().properties}
                for prop in properties:
                    if prop.name not in existing:
                        collection.config.add_property(prop)
        self._returned.clear()

    def create_tenant(self, name: str | None = None, collections: Iterable[str] | None = None) -> str:
        """Make a tenant (a hospital) in every collection (default: every registered source); a no-op where it
        exists."""
        name = name or self.config.weaviate.tenant
        with self._guard(f"creating tenant {name!r}"):
            for collection_name in registered_collections() if collections is None else collections:
                tenants = self.client.collections.use(collection_name).tenants
                if name not in tenants.get():
                    tenants.create(Tenant(name=name))
        return name

    def tenants(self, collection: str) -> set[str]:
        with self._guard(f"listing tenants of {collection}"):
            return set(self.client.collections.use(collection).tenants.get())

    def _collection(self, name: str, tenant: str | None) -> Any:
        if name not in registered_collections():
            raise StoreError(f"unknown collection {name!r}; known: {', '.join(registered_collections())}")
        return self.client.collections.use(name).with_tenant(tenant or self.config.weaviate.tenant)

    # --- writes -------------------------------------------------------------------------------

    def upsert(
        self,
        collection: str,
        records: Iterable[Record],
        *,
        tenant: str | None = None,
        raise_on_failure: bool = True,
        on_written: Callable[[list[str]], None] | None = None,
    ) -> ImportReport:
        """Insert or replace records in bounded batches.

        Each batch is acknowledged by the server before the next is sent (Weaviate has written it
        to its write-ahead log); ``on_written`` receives the source ids of each acknowledged batch.
        Rejected objects are collected with their reasons and raised as ``ImportFailed`` at the end.
        """
        tenant = tenant or self.config.weaviate.tenant
        target = self._collection(collection, tenant)
        report = ImportReport(collection)
        for chunk in _chunks(records, self.config.weaviate.batch_size):
            objects = [
                DataObject(
                    uuid=object_uuid(collection, record.source_id),
                    properties={**record.properties, "source_id": record.source_id},
                    vector={name: list(vector) for name, vector in record.vectors.items()} or None,
                )
                for record in chunk
            ]
            with self._guard(f"writing to {collection}", collection, tenant):
                failed = self._insert(target, objects)
            report.failures += [(chunk[index].source_id, message) for index, message in failed.items()]
            written = [record.source_id for index, record in enumerate(chunk) if index not in failed]
            report.written += len(written)
            for listener in self.write_listeners:
                listener(collection, tenant)
            if on_written is not None:
                on_written(written)
        if report.failures and raise_on_failure:
            raise ImportFailed(collection, report.failures, report.written)
        return report

    def _insert(self, target: Any, objects: list[DataObject]) -> dict[int, str]:
        """Write one batch; return the reason for each rejected object by its index."""
        try:
            return {index: error.message for index, error in target.data.insert_many(objects).errors.items()}
        except WeaviateInsertManyAllFailedError as error:
            if len(objects) == 1:
                return {0: str(error).split("Here is the set of all errors: ", 1)[-1]}
            # When every object fails the client folds the reasons together; ask one by one to name each.
            return {index: self._insert(target, [obj])[0] for index, obj in enumerate(objects)}

    # --- reads --------------------------------------------------------------------------------

    def stored_hashes(self, collection: str, source_ids: Sequence[str], *, tenant: str | None = None) -> dict[str, str]:
        """``content_hash`` of those of ``source_ids`` already stored: what a re-run may skip."""
        if not source_ids:
            return {}
        tenant = tenant or self.config.weaviate.tenant
        uuids = [object_uuid(collection, source_id) for source_id in source_ids]
        with self._guard(f"reading {collection}", collection, tenant):
            result = self._collection(collection, tenant).query.fetch_objects(
                filters=Filter.by_id().contains_any(uuids), limit=len(uuids),
                return_properties=["source_id", "content_hash"],
            )
        return {item.properties["source_id"]: item.properties.get("content_hash") or "" for item in result.objects}

    def count(self, collection: str, *, tenant: str | None = None) -> int:
        tenant = tenant or self.config.weaviate.tenant
        with self._guard(f"counting {collection}", collection, tenant):
            return self._collection(collection, tenant).aggregate.over_all(total_count=True).total_count or 0

    def properties(self, collection: str, names: Sequence[str], *, tenant: str | None = None
                   ) -> Iterator[dict[str, Any]]:
        """The named properties of every object of the collection (the client's cursor, in pages)."""
        tenant = tenant or self.config.weaviate.tenant
        with self._guard(f"reading {collection}", collection, tenant):
            for item in self._collection(collection, tenant).iterator(return_properties=list(names)):
                yield dict(item.properties)

    def fetch(self, collection: str, source_id: str, *, tenant: str | None = None) -> Hit | None:
        tenant = tenant or self.config.weaviate.tenant
        with self._guard(f"reading {collection}", collection, tenant):
            found = self._collection(collection, tenant).query.fetch_object_by_id(
                object_uuid(collection, source_id), return_properties=self._return_properties(collection))
        return None if found is None else self._hit(collection, found)

    def _return_properties(self, collection: str) -> list[str]:
        """Every schema field the server's collection has, blobs included.

        Weaviate returns every property except blobs unless told which; we name them all so that
        ``sentence_vectors`` comes back. A collection made before a field was added (and not yet
        passed through ``ensure_schema``) lacks it, and asking for it would fail the query, so the
        list is what the server has, read once per collection.
        """
        if collection not in self._returned:
            if collection not in registered_collections():
                raise StoreError(f"unknown collection {collection!r}; known: {', '.join(registered_collections())}")
            with self._guard(f"reading the schema of {collection}"):
                present = {prop.name for prop in self.client.collections.use(collection).config.get().properties}
            self._returned[collection] = [field.name for field in collection_spec(collection).fields
                                          if field.name in present]
        return self._returned[collection]

    def _search(self, kind: str, collection: str, tenant: str | None, filters: Filters | None,
                **arguments: Any) -> list[Hit]:
        tenant = tenant or self.config.weaviate.tenant
        return_properties = self._return_properties(collection)
        with self._guard(f"{kind} search in {collection}", collection, tenant):
            search = getattr(self._collection(collection, tenant).query, kind)
            result = search(filters=filters.to_weaviate() if filters else None, return_properties=return_properties,
                            **arguments)
        return [self._hit(collection, item) for item in result.objects]

    def hybrid(
        self,
        collection: str,
        query: str,
        vector: Sequence[float],
        *,
        alpha: float = 0.5,
        target_vector: str = "text",
        filters: Filters | None = None,
        limit: int = 10,
        tenant: str | None = None,
    ) -> list[Hit]:
        """BM25 on ``text`` fused with vector search on ``target_vector``; alpha=1 is pure vector."""
        return self._search("hybrid", collection, tenant, filters, query=query, vector=list(vector), alpha=alpha,
                            target_vector=target_vector, query_properties=["text"], limit=limit,
                            return_metadata=MetadataQuery(score=True))

    def near_vector(
        self,
        collection: str,
        vector: Sequence[float],
        *,
        target_vector: str = "text",
        filters: Filters | None = None,
        limit: int = 10,
        tenant: str | None = None,
    ) -> list[Hit]:
        """Pure vector search on one named vector (e.g. ``joint`` for image queries)."""
        return self._search("near_vector", collection, tenant, filters, near_vector=list(vector),
                            target_vector=target_vector, limit=limit, return_metadata=MetadataQuery(distance=True))

    def bm25(
        self,
        collection: str,
        query: str,
        *,
        filters: Filters | None = None,
        limit: int = 10,
        tenant: str | None = None,
    ) -> list[Hit]:
        """Keyword search only (the BM25 baseline)."""
        return self._search("bm25", collection, tenant, filters, query=query, query_properties=["text"],
                            limit=limit, return_metadata=MetadataQuery(score=True))

    @staticmethod
    def _hit(collection: str, item: Any) -> Hit:
        return Hit(
            collection=collection,
            source_id=item.properties["source_id"],
            uuid=str(item.uuid),
            properties=dict(item.properties),
            score=getattr(item.metadata, "score", None),
            distance=getattr(item.metadata, "distance", None),
        )
