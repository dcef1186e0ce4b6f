"""The vector store: schema, idempotent upserts and searches over Weaviate.

``Store.open(config)`` connects to ``MEDRAG_WEAVIATE_URL`` or starts the embedded server. Objects
get deterministic UUIDv5 ids from their source id, so re-ingesting the same input never
duplicates. Every write reports each rejected object; nothing is dropped silently.

Opened with a hospital's key file (``MEDRAG_WEAVIATE_KEY_FILE``), every request carries that key and the
server's role decides what it reaches; a refusal becomes ``AccessDenied`` naming the tenant and the fix,
and is logged (``medrag.store.store``) without the key.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re
import shutil
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import islice
from typing import Any

import httpx
import weaviate
from weaviate.classes.config import Configure, ConsistencyLevel, Property
from weaviate.classes.data import DataObject
from weaviate.classes.query import Filter, MetadataQuery
from weaviate.classes.tenants import Tenant
from weaviate.exceptions import (
    WeaviateBaseError,
    WeaviateClosedClientError,
    WeaviateConnectionError,
    WeaviateInsertManyAllFailedError,
    WeaviateRetryError,
    WeaviateTimeoutError,
)

from medrag.config import Config
from medrag.sources import collections as registered_collections
from medrag.sources import object_uuid
from medrag.store.connection import connect_client, start_embedded
from medrag.store.errors import AccessDenied, ConnectionFailed, ImportFailed, StoreError, UnknownTenant
from medrag.store.schema import CollectionSpec, collection_spec, collection_specs
from medrag.store.server import EmbeddedServer
from medrag.store.tenants import TenantKey, check_tenant_name, provision
from medrag.vectors import VECTORS

log = logging.getLogger(__name__)


class _HandledBatchErrors(logging.Filter):
    """Drop weaviate-client's ERROR record for a batch with rejected objects: it dumps each object's properties and
    vectors to the terminal, while ``Store.upsert`` retries those objects and reports each one left, by source id,
    in ``ImportFailed`` or the ``ImportReport``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, dict) and str(record.msg.get("message", "")).startswith("Failed to send"))


logging.getLogger("weaviate-client").addFilter(_HandledBatchErrors())

REPLICA_RETRIES = (0.5, 2.0)
"""Seconds to wait before each new try of the objects a replicated write rejected (see ``_insert_with_retries``)."""

UNREACHABLE_SIGNS = ("Deadline Exceeded", "DEADLINE_EXCEEDED", "UNAVAILABLE", "failed to connect", "Connection refused",
                     "Connection reset", "Socket closed")
"""How the client words a server that did not answer, when it wraps the gRPC status in a query error."""
DISK_FULL_SIGNS = ("read-only due to", "resource pressure", "no space left on device", "disk usage")
"""How Weaviate words a write refused for a full disk."""

_DENIAL = re.compile(r"user '(?P<user>[^']*)' has insufficient permissions to (?P<permission>\w+) "
                     r"\[\[(?P<resource>[^\]]*)\]\]")
"""How Weaviate 1.39 words an RBAC refusal, over REST (403) and gRPC (permission denied) alike:
``user 'hospital-a' has insufficient permissions to read_data [[Domain: data, Collection: Article, Tenant: b,
Object: *]]``."""


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


def _denial(error: BaseException) -> re.Match[str] | None:
    """The user, permission and resource of an RBAC refusal, or None for any other error."""
    return _DENIAL.search(str(error))


def _new_client(config: Config, server: EmbeddedServer | None, tenant_key: TenantKey | None) -> weaviate.WeaviateClient:
    """A connected client for the embedded ``server`` (its current ports), or for the configured URL without one."""
    settings = config.weaviate
    if server is None:
        return connect_client(str(settings.url), tenant_key.key if tenant_key else settings.api_key, config,
                              grpc_host=settings.grpc_host, grpc_port=settings.grpc_port, secure=settings.secure,
                              key_file=settings.key_file)
    return connect_client(server.url, tenant_key.key if tenant_key else server.api_key, config,
                          grpc_port=server.grpc_port, key_file=settings.key_file)


def _unreachable(error: BaseException) -> bool:
    """Whether the error says the server did not answer (down, killed, hung, network), not that it refused."""
    if isinstance(error, httpx.TransportError | WeaviateConnectionError | WeaviateTimeoutError | WeaviateRetryError
                  | WeaviateClosedClientError):
        return True
    return any(sign in str(error) for sign in UNREACHABLE_SIGNS)


def _chunks(items: Iterable[Record], size: int) -> Iterator[list[Record]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


class Store:
    """A connection to Weaviate plus the embedded server behind it, if we started one."""

    def __init__(self, client: weaviate.WeaviateClient, config: Config, server: EmbeddedServer | None = None, *,
                 tenant_key: TenantKey | None = None) -> None:
        self.client = client
        self.config = config
        self.server = server
        self.tenant_key = tenant_key
        """The hospital key every request carries, or None for the configured (administrator's) key."""
        self.write_listeners: list[Callable[[str, str], None]] = []
        """Called with (collection, tenant) after each acknowledged write, e.g. to invalidate caches."""
        self._returned: dict[str, list[str]] = {}
        self._reconnect = False
        """Set when a call lost the server or the connection: the next call restarts a dead embedded server and
        connects a new client first."""
        """Per collection, the schema fields the server has: what searches and fetches return."""

    @classmethod
    def open(cls, config: Config, log: Callable[[str], None] = print) -> Store:
        """Connect to the configured external Weaviate, or start the embedded one.

        With ``key_file`` the connection carries the hospital's key, never the administrator's: in embedded mode the
        server is still started with its own (root) key, which this Store does not keep.
        """
        tenant_key = cls._hospital_key(config)
        if config.weaviate.url:
            return cls(_new_client(config, None, tenant_key), config, tenant_key=tenant_key)
        server = start_embedded(config, log)
        try:
            client = _new_client(config, server, tenant_key)
        except BaseException:
            server.stop()
            raise
        return cls(client, config, server, tenant_key=tenant_key)

    @staticmethod
    def _hospital_key(config: Config) -> TenantKey | None:
        """The key file's credentials, checked against the rest of the configuration before anything connects."""
        settings = config.weaviate
        if settings.key_file is None:
            return None
        tenant_key = TenantKey.load(settings.key_file)
        if settings.url and settings.api_key:
            raise StoreError(f"both MEDRAG_WEAVIATE_API_KEY and MEDRAG_WEAVIATE_KEY_FILE ({settings.key_file}) are "
                             "set: a hospital connects with its key file only; unset MEDRAG_WEAVIATE_API_KEY")
        if settings.tenant != tenant_key.tenant:
            raise StoreError(f"the key file {settings.key_file} is hospital {tenant_key.tenant!r}'s, but the tenant "
                             f"is {settings.tenant!r}: set MEDRAG_WEAVIATE_TENANT={tenant_key.tenant} ([weaviate] "
                             "tenant), or use that tenant's own key file")
        return tenant_key

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
        """Turn client errors into one message naming the cause and the fix.

        A call that loses the server fails (it may or may not have been done); the next one reconnects, so a
        long-lived Store (an Assistant behind a hospital's integration) serves again once Weaviate is back.
        """
        self._recover()
        # A dead embedded server is known at once; asking the client would mean minutes of retries.
        self._raise_if_server_gone(action)
        try:
            yield
        except (WeaviateBaseError, httpx.TransportError) as error:
            # A kill closes the sockets a moment before the process can be reaped: give it that moment.
            self._raise_if_server_gone(action, settle=0.5)
            if _unreachable(error):
                self._reconnect = True
                raise self._unreachable_error(action, error) from None
            denial = _denial(error)
            if denial:
                raise self._access_denied(action, denial) from None
            if collection and tenant and tenant not in self.tenants(collection):
                raise UnknownTenant(
                    f"tenant {tenant!r} does not exist in {collection}; known: "
                    f"{', '.join(sorted(self.tenants(collection))) or 'none'}. Create it with "
                    "Store.create_tenant or ingest with --tenant"
                ) from None
            raise StoreError(f"{action} failed on Weaviate at {self.url}: {error}") from None

    def _access_denied(self, action: str, denial: re.Match[str]) -> AccessDenied:
        """The server's refusal as one error naming the user, the tenant and the fix; logged without the key."""
        user, permission, resource = denial["user"], denial["permission"], denial["resource"]
        named = re.search(r"Tenant: ([^,\]]+)", resource)
        tenant = named.group(1) if named and named.group(1) != "*" else None
        log.warning("Weaviate refused %s: user %r may not %s [%s]", action, user, permission, resource)
        own = self.tenant_key.tenant if self.tenant_key else None
        if tenant is not None and own is not None and tenant != own:
            fix = (f"This key is hospital {own!r}'s and its server-side role reaches tenant {own!r} only: name that "
                   f"tenant (or none), or open the store with tenant {tenant!r}'s own key file (`medrag tenant add "
                   f"{tenant}` writes it; MEDRAG_WEAVIATE_KEY_FILE)")
        elif tenant is not None:
            fix = (f"The key's role does not reach tenant {tenant!r}: use that tenant's key (`medrag tenant add "
                   f"{tenant}` writes it; MEDRAG_WEAVIATE_KEY_FILE)")
        else:
            fix = ("The key's role does not allow it: do it with the administrator's (root) key, or have the "
                   "administrator widen the role")
        return AccessDenied(f"Weaviate refused {action} (HTTP 403): user {user!r} may not {permission} [{resource}]. "
                            f"{fix}", user=user, permission=permission, tenant=tenant)

    def _raise_if_server_gone(self, action: str, settle: float = 0.0) -> None:
        reason = self.server.exit_reason(settle) if self.server is not None else None
        if reason:
            self._reconnect = True
            raise StoreError(
                f"{action} failed: the embedded Weaviate server is gone. {reason}\n"
                "The next call restarts it on the same data (or open the store again); if it keeps dying, read the log"
            )

    def _unreachable_error(self, action: str, error: BaseException) -> ConnectionFailed:
        where = (f"the embedded server (pid {self.server.pid}, log {self.server.log_path}) is still running"
                 if self.server is not None else
                 "check that it runs and that MEDRAG_WEAVIATE_URL / MEDRAG_WEAVIATE_GRPC_PORT reach it")
        timed_out = isinstance(error, httpx.TimeoutException | WeaviateTimeoutError) or "eadline" in str(error)
        how = f"did not answer within {self.config.weaviate.timeout:g} s" if timed_out else "dropped the connection"
        return ConnectionFailed(
            f"{action} failed: Weaviate at {self.url} {how} ({str(error).splitlines()[0][:200]}); {where}. "
            "Raise MEDRAG_WEAVIATE_TIMEOUT if it is only slow. The next call reconnects"
        )

    def _recover(self) -> None:
        """After a call lost the server: restart a dead embedded server on its data dir, then connect a new client
        (a restarted server has new ports). While Weaviate is still unreachable this raises ``ConnectionFailed`` and
        the next call tries again."""
        if not self._reconnect:
            return
        if self.server is not None and self.server.exit_reason() is not None:
            log.warning("restarting the embedded Weaviate server on %s: %s\nIts indexes may lack the last "
                        "writes before the crash: re-run the ingest, or Store.repair_indexes per collection",
                        self.server.data_dir, self.server.exit_reason())
            self.server.stop()
            self.server.start()
        stale, self.client = self.client, _new_client(self.config, self.server, self.tenant_key)
        self._reconnect = False
        with contextlib.suppress(Exception):  # its sockets went with the old server; closing may complain
            stale.close()

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
                        replication_config=self._replication(),
                    )
                    continue
                collection = self.client.collections.use(spec.name)
                existing = {prop.name for prop in collection.config.get().properties}
                for prop in properties:
                    if prop.name not in existing:
                        collection.config.add_property(prop)
        self._returned.clear()

    def _replication(self) -> Any:
        """Replicas per object as configured (a collection's factor is set when it is made); None on one node, where
        there is nothing to replicate. Weaviate repairs replicas in the background on its own (async replication)."""
        factor = self.config.weaviate.replication_factor
        return Configure.replication(factor=factor) if factor > 1 else None

    def _consistency(self) -> ConsistencyLevel:
        level = self.config.weaviate.consistency.upper()
        if level not in ConsistencyLevel.__members__:
            raise StoreError(f"consistency level {self.config.weaviate.consistency!r} is not one of ONE, QUORUM, ALL; "
                             "fix MEDRAG_WEAVIATE_CONSISTENCY ([weaviate] consistency)")
        return ConsistencyLevel[level]

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

    def provision_tenant(self, name: str, *, write: bool = True, rotate: bool = False) -> TenantKey:
        """A hospital: its tenant in every registered collection, a role limited to that tenant's data (read, and
        create + update when ``write``), a database user with that role, and its new key (not saved, not logged).

        Needs the root key of a server with RBAC on (``MEDRAG_WEAVIATE_RBAC``). Run again after a new source is
        registered, with ``rotate``, to extend the role to it. ``medrag.store.tenants.role_permissions`` lists what
        the role grants.
        """
        check_tenant_name(name)
        with self._guard("reading the roles of this key"), warnings.catch_warnings():
            # the root role holds permissions newer than the client knows (RBAC001 on 1.39); they do not matter here
            warnings.filterwarnings("ignore", message="RBAC001")
            roles = self.client.users.get_my_user().roles  # empty when the server has no role-based access control
        if not roles:
            raise StoreError(f"Weaviate at {self.url} does not enforce roles (RBAC is off), so a hospital key would "
                             "reach every tenant. Start the embedded server with MEDRAG_WEAVIATE_RBAC=true ([weaviate] "
                             "rbac), or an external one with AUTHORIZATION_RBAC_ENABLED=true and "
                             "AUTHENTICATION_DB_USERS_ENABLED=true")
        self.ensure_schema()
        self.create_tenant(name)
        with self._guard(f"provisioning hospital {name!r}"):
            return provision(self.client, name, registered_collections(), write=write, rotate=rotate)

    def tenants(self, collection: str) -> set[str]:
        with self._guard(f"listing tenants of {collection}"):
            return set(self.client.collections.use(collection).tenants.get())

    def _collection(self, name: str, tenant: str | None) -> Any:
        if name not in registered_collections():
            raise StoreError(f"unknown collection {name!r}; known: {', '.join(registered_collections())}")
        return (self.client.collections.use(name).with_tenant(tenant or self.config.weaviate.tenant)
                .with_consistency_level(self._consistency()))

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
                failed = self._insert_with_retries(target, objects)
            report.failures += [(chunk[index].source_id, self._explain(message)) for index, message in failed.items()]
            written = [record.source_id for index, record in enumerate(chunk) if index not in failed]
            report.written += len(written)
            for listener in self.write_listeners:
                listener(collection, tenant)
            if on_written is not None:
                on_written(written)
        if report.failures and raise_on_failure:
            raise ImportFailed(collection, report.failures, report.written)
        return report

    def _explain(self, reason: str) -> str:
        """A rejection with its fix where the cause is the server's disk, not the object: Weaviate turns read-only
        when its disk passes DISK_USE_READONLY_PERCENTAGE (90 % by default) and rejects every write after."""
        if not any(sign in reason for sign in DISK_FULL_SIGNS):
            return reason
        if self.server is None:
            return (f"{reason} (the disk of Weaviate at {self.url} is nearly full: free space there, or give it a "
                    "larger volume)")
        usage = shutil.disk_usage(self.server.data_dir)
        return (f"{reason} (the disk of the Weaviate data dir {self.server.data_dir} is "
                f"{100 * usage.used / usage.total:.0f}% full, {usage.free / 2**20:.0f} MiB free; Weaviate stops "
                "writing at 90%: free space there or set MEDRAG_WEAVIATE_DATA_DIR to a larger disk, then restart)")

    def _insert_with_retries(self, target: Any, objects: list[DataObject]) -> dict[int, str]:
        """Write one batch; on a replicated collection send what was rejected again after each of ``REPLICA_RETRIES``.

        Objects in flight to a replica that has just died are rejected ("the client connection is closing") even
        when a quorum wrote them; a moment later the cluster routes around that node, so a retry succeeds. Upserts
        are idempotent (the id comes from the source id), so sending again is safe.
        """
        failed = self._insert(target, objects)
        for pause in REPLICA_RETRIES if self.config.weaviate.replication_factor > 1 else ():
            if not failed:
                break
            time.sleep(pause)
            indices = sorted(failed)
            again = self._insert(target, [objects[index] for index in indices])
            failed = {indices[position]: message for position, message in again.items()}
        return failed

    def _insert(self, target: Any, objects: list[DataObject]) -> dict[int, str]:
        """Write one batch; return the reason for each rejected object by its index."""
        try:
            return {index: error.message for index, error in target.data.insert_many(objects).errors.items()}
        except WeaviateInsertManyAllFailedError as error:
            if _denial(error):
                raise  # the server refused the whole request: the guard names the tenant and the fix
            reason = str(error).split("Here is the set of all errors: ", 1)[-1]
            if len(objects) == 1:
                return {0: reason}
            return self._insert_one_by_one(target, objects, reason)

    def _insert_one_by_one(self, target: Any, objects: list[DataObject], reason: str) -> dict[int, str]:
        """Send the objects of a batch that failed whole one at a time, to name each one's reason; return those.

        One that goes through alone is written: the cause had passed (a replica that had just died, say). Sending
        stops after one timeout's worth of time: a cause that holds for every object would otherwise cost its wait
        once per object (a write at ALL of 5 objects right after a cluster lost its Raft leader gave up after 480 s
        with a 120 s timeout, ``python -m reliability --only cluster``). The rest keep the batch's reason.
        """
        timeout = self.config.weaviate.timeout
        deadline = time.monotonic() + timeout
        failed = {}
        for index, obj in enumerate(objects):
            if time.monotonic() > deadline:
                failed[index] = f"{reason} (not sent again alone: the objects before it took {timeout:.0f} s)"
            elif alone := self._insert(target, [obj]):
                failed[index] = alone[0]
        return failed

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

    @property
    def check_indexes(self) -> bool:
        """Whether writers should look for objects an index lost (``unindexed``): the embedded server started on a
        data dir that the server before it did not stop cleanly (an external server's history is not known here)."""
        return self.server is not None and self.server.unclean_start

    def unindexed(self, collection: str, source_ids: Sequence[str], *, tenant: str | None = None) -> list[str]:
        """Those of ``source_ids`` that the object store holds but one of their indexes does not find.

        Weaviate writes an object to its object store and to its indexes, each through its own buffered commit log,
        and flushes them together before it acknowledges a batch; a SIGKILL in the middle of a batch keeps what the
        buffers had already written. Two losses were seen (``python -m reliability --only faults``):

        - the **id index**: the object store holds the object (``exists`` by id, BM25 and the count find it) but a
          filter on its id does not, and nothing that filters by id does: ``fetch``, ``stored_hashes``, a
          filtered delete (7 of 60 objects after three kills). Upserting it again changes nothing, since Weaviate
          re-indexes only what differs from the stored object;
        - the **vector index**: its HNSW commit log is flushed now and then, so the last batch's vectors can be
          missing while the object is there (50 of 50 of a batch).

        Both are mended the same way: ``delete`` the object (by id, which reads the object store) and write it
        again. One ``exists`` request per id the filter misses and one vector query per found object and vector:
        meant for after an unclean stop (``check_indexes``), not for every write.
        """
        if not source_ids:
            return []
        tenant = tenant or self.config.weaviate.tenant
        uuids = {str(object_uuid(collection, source_id)): source_id for source_id in source_ids}
        missing = []
        with self._guard(f"checking the indexes of {collection}", collection, tenant):
            target = self._collection(collection, tenant)
            stored = target.query.fetch_objects(filters=Filter.by_id().contains_any(list(uuids)), limit=len(uuids),
                                                include_vector=True, return_properties=["source_id"])
            found = {str(item.uuid) for item in stored.objects}
            missing += [source_id for uuid, source_id in uuids.items()
                        if uuid not in found and target.data.exists(uuid)]
            for item in stored.objects:
                for name, vector in item.vector.items():
                    # Identical texts share a vector: look a little past the first hit.
                    hits = target.query.near_vector(vector, target_vector=name, limit=3, return_properties=[])
                    if item.uuid not in {hit.uuid for hit in hits.objects}:
                        missing.append(item.properties["source_id"])
                        break
        return missing

    def repair_indexes(self, collection: str, *, tenant: str | None = None, page: int = 100) -> list[str]:
        """Rewrite every object of the collection that an index lost (see ``unindexed``), from what the object store
        holds (properties and vectors, read by the cursor, which walks the object store): after a crash, without
        the source files. A query or two per object: minutes for a large collection. Returns the source ids
        rewritten."""
        tenant = tenant or self.config.weaviate.tenant
        with self._guard(f"reading {collection}", collection, tenant):
            # A generator, entered once: the client's iterator is its own iterator and starts over from the first
            # object on every iter(), which islice calls for each page (the first page would come back forever).
            walk = (item for item in self._collection(collection, tenant).iterator(
                include_vector=True, return_properties=self._return_properties(collection)))
            pages = iter(lambda: list(islice(walk, page)), [])
            repaired = []
            for items in pages:
                stored = {item.properties["source_id"]: item for item in items}
                lost = self.unindexed(collection, list(stored), tenant=tenant)
                if not lost:
                    continue
                objects = [DataObject(uuid=stored[source_id].uuid, properties=dict(stored[source_id].properties),
                                      vector=dict(stored[source_id].vector)) for source_id in lost]
                self.delete(collection, lost, tenant=tenant)
                with self._guard(f"repairing the indexes of {collection}", collection, tenant):
                    failed = self._insert(self._collection(collection, tenant), objects)
                if failed:
                    raise ImportFailed(collection, [(lost[index], reason) for index, reason in failed.items()],
                                       len(objects) - len(failed))
                repaired += lost
        for listener in self.write_listeners if repaired else ():
            listener(collection, tenant)
        return repaired

    def delete(self, collection: str, source_ids: Sequence[str], *, tenant: str | None = None) -> None:
        """Remove these objects (absent ones are ignored).

        One request per object, by id: Weaviate then looks the object up in its object store, so this also removes
        an object whose id-index entry a crash lost (see ``unindexed``), which a filtered ``delete_many`` would not
        see. Deletes are rare here (repairs), so the per-object cost does not matter.
        """
        if not source_ids:
            return
        tenant = tenant or self.config.weaviate.tenant
        with self._guard(f"deleting from {collection}", collection, tenant):
            target = self._collection(collection, tenant)
            for source_id in source_ids:
                target.data.delete_by_id(object_uuid(collection, source_id))
        for listener in self.write_listeners:
            listener(collection, tenant)

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
