"""Cluster area: a real three-node Weaviate cluster on loopback, replication factor 3, driven through medrag's Store.

The scenario a hospital's review asks about: objects are ingested; one node is killed with SIGKILL (no clean
shutdown); ingesting and searching go on at QUORUM, and every error is counted; every acknowledged object is then
counted and fetched by id. While the node is down a write at ALL is tried twice, right after the kill and once the
cluster reports the node down: Weaviate 1.39 rejects it while it still lists the dead node and accepts it (two of
two) once gossip has dropped it; either answer must come within a bound. The node is restarted and asked alone
(consistency ONE, which reads its own replica first) until it holds every object, which async replication copies
to it. Weaviate 1.39 refuses filesystem backups on more than one node,
so the cluster part checks that medrag turns that refusal into an error naming the fix; the multi-tenant collection
(three tenants) is then backed up with the filesystem module on the embedded single node, dropped, restored and
compared object by object, properties and vectors.
"""

from __future__ import annotations

import dataclasses
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from weaviate.classes.config import ConsistencyLevel

from medrag.config import Config
from medrag.store import ARTICLES, TEXT_VECTOR, Hit, ImportFailed, Record, Store, StoreError, collection_spec
from medrag.store.backup import backup, restore
from medrag.store.binary import find_binary
from medrag.store.cluster import LocalCluster
from reliability import register_suite

DIMENSIONS = 32
TENANT = "hospital-a"
PROBE_TENANT = "consistency-all-probe"
"""The tenant the write at ALL goes to, so that whatever it leaves behind cannot change the main tenant's count."""
OTHER_TENANT = "hospital-b"
FAST_REPAIR = {"ASYNC_REPLICATION_FREQUENCY": "5s", "ASYNC_REPLICATION_FREQUENCY_WHILE_PROPAGATING": "1s",
               "ASYNC_REPLICATION_PROPAGATION_DELAY": "1s"}
"""Server settings of the quick run: replicas compared every 5 s (Weaviate's minimum) and a write copied after 1 s,
instead of 30 s and 30 s, so that a test sees catch-up in seconds. The full run keeps Weaviate's defaults."""
SLOW_S = 120.0
"""Query timeout of the scenario's stores: schema changes on a loaded 2-core machine take more than the default 30 s,
and a timeout there is not what this area measures."""
ALL_WRITE_BOUND_S = 20.0
"""A write at ALL with a replica down must be answered, rejected or accepted, within this many seconds."""


def records(prefix: str, start: int, count: int) -> list[Record]:
    """Synthetic report-like objects with unit vectors seeded by their index: the same id always has the same data."""
    made = []
    for index in range(start, start + count):
        generator = random.Random(f"{prefix}-{index}")
        vector = [generator.gauss(0.0, 1.0) for _ in range(DIMENSIONS)]
        norm = sum(value * value for value in vector) ** 0.5
        made.append(Record(f"{prefix}-{index}", {"text": f"chest radiograph {prefix} {index}: no acute findings",
                                                  "year": 2000 + index % 25},
                           {TEXT_VECTOR: [value / norm for value in vector]}))
    return made


def _batches(items: Sequence[Record], size: int) -> Iterator[Sequence[Record]]:
    for first in range(0, len(items), size):
        yield items[first:first + size]


def missing_ids(store: Store, source_ids: Sequence[str], tenant: str) -> list[str]:
    """The ids ``store`` cannot find, asked in pages of 500 (one query each, at the store's consistency level)."""
    missing: list[str] = []
    for first in range(0, len(source_ids), 500):
        page = list(source_ids[first:first + 500])
        found = store.stored_hashes(ARTICLES, page, tenant=tenant)
        missing += [source_id for source_id in page if source_id not in found]
    return missing


@dataclasses.dataclass
class NodeLoss:
    """What ingesting and searching at QUORUM did while a node was dead."""

    acknowledged: list[str] = dataclasses.field(default_factory=list)
    operations: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)

    def attempt(self, action: Callable[[], Any]) -> tuple[bool, Any]:
        """Run one store call, counting it; keep its error instead of stopping the scenario. Returns (ok, result)."""
        self.operations += 1
        try:
            return True, action()
        except StoreError as error:
            self.errors.append(str(error).splitlines()[0])
            return False, None


def _searches(store: Store, probe: Record) -> dict[str, Callable[[], list[Hit]]]:
    """The reads each batch is followed by; each must put ``probe`` first."""
    vector = probe.vectors[TEXT_VECTOR]
    return {
        "vector search": lambda: store.near_vector(ARTICLES, vector, limit=3, tenant=TENANT),
        "hybrid search": lambda: store.hybrid(ARTICLES, str(probe.properties["text"]), vector, alpha=0.9, limit=3,
                                              tenant=TENANT),
        "fetch": lambda: [hit for hit in [store.fetch(ARTICLES, probe.source_id, tenant=TENANT)] if hit],
    }


def ingest_and_search(store: Store, items: Sequence[Record], loss: NodeLoss, batch: int) -> None:
    """Upsert ``items`` in batches, each followed by a vector search, a hybrid search and a fetch of its last object,
    each of which must find that object."""
    for chunk in _batches(items, batch):
        written, _ = loss.attempt(lambda chunk=chunk: store.upsert(ARTICLES, chunk, tenant=TENANT))
        if not written:
            continue
        loss.acknowledged += [record.source_id for record in chunk]
        probe = chunk[-1]
        for name, search in _searches(store, probe).items():
            ok, hits = loss.attempt(search)
            if ok and (not hits or hits[0].source_id != probe.source_id):
                loss.errors.append(f"{name} for {probe.source_id} found {hits[0].source_id if hits else 'nothing'}")


def write_at_all(config: Config, cluster: LocalCluster, prefix: str, *, retries: bool) -> dict[str, Any]:
    """Write 5 objects at consistency ALL while a replica is down: whether it fails, how fast, what it left behind.

    Without ``retries`` the Store is told the collection is not replicated, which only turns its retries of rejected
    objects off: the figures are then the server's own first answer.
    """
    probe = records(prefix, 0, 5)
    settings = cluster.config(config).replace(weaviate={"consistency": "ALL"})
    if not retries:
        settings = settings.replace(weaviate={"replication_factor": 1})
    with Store.open(settings) as store:
        started = time.monotonic()
        try:
            store.upsert(ARTICLES, probe, tenant=PROBE_TENANT)
        except ImportFailed as error:
            seconds = time.monotonic() - started
            outcome = {"failed": True, "rejected": len(error.failures), "reason": error.failures[0][1]}
        else:
            seconds = time.monotonic() - started
            outcome = {"failed": False, "rejected": 0, "reason": ""}
    with Store.open(cluster.config(config)) as store:
        stored = [record.source_id for record in probe]
        stored = [source_id for source_id in stored if source_id not in missing_ids(store, stored, PROBE_TENANT)]
    return {**outcome, "seconds": round(seconds, 2), "objects": len(probe), "stored": stored}


def wait_until_marked_down(cluster: LocalCluster, node: int, timeout: float = 60.0) -> None:
    """Wait until the first node stops reporting ``node`` HEALTHY (gossip noticed it is gone)."""
    started = time.monotonic()
    name = cluster.nodes[node].name
    while time.monotonic() - started < timeout:
        if cluster.status(0)["health"].get(name) != "HEALTHY":
            return
        time.sleep(0.2)
    raise StoreError(f"{name} was killed but the cluster still reports it HEALTHY after {timeout:.0f} s")


def catch_up(config: Config, cluster: LocalCluster, node: int, expected: Mapping[str, Sequence[str]],
             timeout: float) -> dict[str, Any]:
    """Restart ``node`` and ask it alone (consistency ONE: its own replica first) until it holds every expected id
    of every tenant."""
    started = time.monotonic()
    cluster.nodes[node].restart()
    cluster.wait_until_formed()
    ready = time.monotonic() - started
    alone = cluster.config(config, node).replace(weaviate={"consistency": "ONE"})
    missing = {tenant: list(ids) for tenant, ids in expected.items()}
    polls = 0
    with Store.open(alone) as store:
        while any(missing.values()) and time.monotonic() - started < timeout:
            polls += 1
            missing = {tenant: missing_ids(store, ids, tenant) for tenant, ids in missing.items()}
            if any(missing.values()):
                time.sleep(0.5)
    held = time.monotonic() - started
    left = sum(len(ids) for ids in missing.values())
    return {"ready seconds": round(ready, 1), "holds every object seconds": None if left else round(held, 1),
            "missing when given up": left, "polls": polls}


def snapshot(store: Store, tenants: Iterable[str]) -> dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any]]]:
    """Every object of every tenant: (tenant, uuid) -> (properties, vectors), read at QUORUM."""
    objects = {}
    for tenant in tenants:
        collection = (store.client.collections.use(ARTICLES).with_tenant(tenant)
                      .with_consistency_level(ConsistencyLevel.QUORUM))
        for item in collection.iterator(include_vector=True):
            objects[(tenant, str(item.uuid))] = (dict(item.properties), dict(item.vector))
    return objects


def backup_and_restore(store: Store, tenants: Sequence[str], backup_id: str) -> dict[str, Any]:
    """Back up the multi-tenant collection, drop it, restore it, and compare every object with what was there."""
    before = snapshot(store, tenants)
    started = time.monotonic()
    backup(store, backup_id, [ARTICLES])
    backed_up = time.monotonic() - started
    store.client.collections.delete(ARTICLES)
    started = time.monotonic()
    restore(store, backup_id, [ARTICLES])
    restored = time.monotonic() - started
    after = snapshot(store, tenants)
    equal = sum(1 for key, value in before.items() if after.get(key) == value)
    return {"objects": len(before), "equal": equal, "extra after restore": len(set(after) - set(before)),
            "tenants": len(tenants), "backup seconds": round(backed_up, 1), "restore seconds": round(restored, 1)}


def cluster_backup_refusal(store: Store) -> str:
    """What a filesystem backup on the cluster does: Weaviate 1.39 refuses it, and medrag must name the fix."""
    try:
        backup(store, f"cluster-{int(time.time())}", [ARTICLES])
    except StoreError as error:
        return str(error)
    return "accepted"


def cluster_scenario(config: Config, root: Path, quick: bool) -> dict[str, Any]:
    """Node loss, the write at ALL, the restarted node's catch-up, and the backup refusal on a fresh cluster."""
    binary = find_binary(config)
    if binary is None:
        raise StoreError("no weaviate-server binary for the cluster: run `make setup` or set MEDRAG_WEAVIATE_BIN")
    before, during, batch = (200, 300, 50) if quick else (2000, 6000, 200)
    victim = 2
    with LocalCluster(binary.path, root, server_env=FAST_REPAIR if quick else None) as cluster:
        settings = cluster.config(config).replace(weaviate={"batch_size": batch,
                                                            "timeout": max(config.weaviate.timeout, SLOW_S)})
        formed = cluster.status()
        with Store.open(settings) as store:
            store.ensure_schema([collection_spec(ARTICLES)])
            factor = store.client.collections.use(ARTICLES).config.get().replication_config.factor
            for tenant in (TENANT, PROBE_TENANT):
                store.create_tenant(tenant, [ARTICLES])
            first = records("before", 0, before)
            store.upsert(ARTICLES, first, tenant=TENANT)
            loss = NodeLoss(acknowledged=[record.source_id for record in first])
            cluster.nodes[victim].kill()
            killed = time.monotonic()
            early = write_at_all(config, cluster, "all-early", retries=False)
            ingest_and_search(store, records("during", 0, during), loss, batch)
            ingest_seconds = time.monotonic() - killed
            wait_until_marked_down(cluster, victim)
            late = write_at_all(config, cluster, "all-late", retries=True)
            expected = list(loss.acknowledged)
            _, counted = loss.attempt(lambda: store.count(ARTICLES, tenant=TENANT))
            _, lost = loss.attempt(lambda: missing_ids(store, expected, TENANT))
            probes = early["stored"] + late["stored"]
            recovery = catch_up(config, cluster, victim, {TENANT: expected, PROBE_TENANT: probes},
                                timeout=120 if quick else 600)
            refusal = cluster_backup_refusal(store)
    return {
        "cluster at start": formed, "replication factor": factor,
        "objects": before + during, "acknowledged": len(expected), "counted at QUORUM": counted,
        "lost": len(expected) if lost is None else len(lost), "operations while down": loss.operations,
        "errors while down": loss.errors, "ingest seconds while down": round(ingest_seconds, 1),
        "write at ALL right after the kill": early, "write at ALL once the node is marked down": late,
        "recovery": recovery,
        "filesystem backup on the cluster": refusal,
        "async replication": "5 s rounds, 1 s propagation delay" if quick else "Weaviate defaults (30 s, 30 s)",
    }


def backup_scenario(config: Config, root: Path, quick: bool) -> dict[str, Any]:
    """Filesystem backup and restore of the multi-tenant collection, three tenants, on the embedded server (one
    node: the only place Weaviate takes filesystem backups)."""
    per_tenant = 100 if quick else 1000
    single = config.replace(weaviate={"url": None, "data_dir": root / "single", "port": None,
                                      "replication_factor": 1, "timeout": max(config.weaviate.timeout, SLOW_S)})
    tenants = [TENANT, OTHER_TENANT, PROBE_TENANT]
    with Store.open(single) as store:
        store.ensure_schema([collection_spec(ARTICLES)])
        for tenant in tenants:
            store.create_tenant(tenant, [ARTICLES])
            store.upsert(ARTICLES, records(tenant, 0, per_tenant), tenant=tenant)
        return backup_and_restore(store, tenants, f"reliability-{int(time.time())}")


def describe(write: Mapping[str, Any]) -> str:
    """One line for a write at ALL: rejected with the server's reason, or accepted; and how long it took."""
    if write["failed"]:
        return f"rejected {write['rejected']}/{write['objects']} in {write['seconds']} s ({write['reason'][:100]})"
    return f"accepted {len(write['stored'])}/{write['objects']} in {write['seconds']} s"


def run(config: Config, out_dir: Path, quick: bool) -> dict[str, Any]:
    """Run the scenario in a temporary folder; ``out_dir`` is unused (the runner writes the figures)."""
    with tempfile.TemporaryDirectory(prefix="medrag-cluster-") as folder:
        figures = cluster_scenario(config, Path(folder) / "cluster", quick)
        figures["backup"] = backup_scenario(config, Path(folder), quick)
    early, late = figures["write at ALL right after the kill"], figures["write at ALL once the node is marked down"]
    recovery, restored = figures["recovery"], figures["backup"]
    passed = (not figures["errors while down"] and figures["lost"] == 0
              and figures["counted at QUORUM"] == figures["acknowledged"] == figures["objects"]
              and recovery["holds every object seconds"] is not None
              and max(early["seconds"], late["seconds"]) <= ALL_WRITE_BOUND_S
              and restored["equal"] == restored["objects"] > 0 and restored["extra after restore"] == 0
              and "single node only" in figures["filesystem backup on the cluster"])
    return {
        "headline": {
            "node-loss errors": len(figures["errors while down"]),
            "objects lost": figures["lost"],
            "seconds until the restarted node holds every object": recovery["holds every object seconds"],
            "write at ALL with a node down": f"right after the kill, first answer: {describe(early)}; once the node "
                                             f"is marked down, with medrag's retries: {describe(late)}",
            "backup/restore objects equal": f"{restored['equal']}/{restored['objects']}",
            "filesystem backup on the cluster": figures["filesystem backup on the cluster"][:120],
        },
        "passed": passed,
        **figures,
    }


register_suite("cluster", run)
