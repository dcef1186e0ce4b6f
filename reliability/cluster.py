"""Cluster area: a real three-node Weaviate cluster on loopback, replication factor 3, driven through medrag's Store.

The scenario a hospital's review asks about: objects are ingested; one node is killed with SIGKILL (no clean
shutdown), a follower, and in the full run on a second cluster the Raft leader (chosen by role: which node wins the
election varies from run to run, and losing the leader stalls writes until the next election); ingesting and
searching go on at QUORUM, and every error is counted; every acknowledged object is then counted and fetched by id.
While the node is down a write at ALL is tried twice, right after the kill and once the cluster reports the node
down: Weaviate 1.39 rejects it while it still lists the dead node and accepts it (two of two) once gossip has
dropped it; after a follower's loss either answer must come within a bound. The node is restarted and asked alone
(consistency ONE, which reads its own replica first) until it holds every object, which async replication copies to
it. Weaviate 1.39 refuses filesystem backups on more than one node, so the cluster part checks that medrag turns
that refusal into an error naming the fix; the multi-tenant collection (three tenants) is then backed up with the
filesystem module on the embedded single node, dropped, restored and compared object by object, properties and
vectors.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from weaviate.classes.config import ConsistencyLevel

from medrag.config import Config
from medrag.store import (
    ARTICLES,
    TEXT_VECTOR,
    ConnectionFailed,
    Hit,
    ImportFailed,
    Record,
    Store,
    StoreError,
    collection_spec,
)
from medrag.store.backup import backup, restore
from medrag.store.binary import find_binary
from medrag.store.cluster import LocalCluster
from reliability import logger_level, register_suite

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
"""A write at ALL with a follower down must be answered, rejected or accepted, within this many seconds."""
LOSSES = ("follower", "leader")
"""The node a scenario kills, by Raft role."""


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
    longest_seconds: float = 0.0

    def attempt(self, action: Callable[[], Any]) -> tuple[bool, Any]:
        """Run one store call, counting and timing it; keep its error instead of stopping the scenario. Returns
        (ok, result)."""
        self.operations += 1
        started = time.monotonic()
        try:
            return True, action()
        except StoreError as error:
            self.errors.append(str(error).splitlines()[0])
            return False, None
        finally:
            self.longest_seconds = max(self.longest_seconds, time.monotonic() - started)


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


def write_at_all(connected: Config, prefix: str, *, retries: bool) -> dict[str, Any]:
    """Write 5 objects at consistency ALL while a replica is down: whether it fails, how fast, what it left behind.

    ``connected`` points at a live node of the cluster. Without ``retries`` the Store is told the collection is not
    replicated, which only turns its retries of rejected objects off: the figures are then the server's own first
    answer. A server that does not answer within the client's timeout is an outcome too ("timed out"): after the
    Raft leader's loss we met it.
    """
    probe = records(prefix, 0, 5)
    settings = connected.replace(weaviate={"consistency": "ALL"})
    if not retries:
        settings = settings.replace(weaviate={"replication_factor": 1})
    with Store.open(settings) as store:
        started = time.monotonic()
        try:
            store.upsert(ARTICLES, probe, tenant=PROBE_TENANT)
        except ImportFailed as error:
            outcome = {"failed": True, "rejected": len(error.failures), "reason": error.failures[0][1]}
        except ConnectionFailed as error:
            outcome = {"failed": True, "rejected": 0, "reason": str(error).splitlines()[0], "timed out": True}
        else:
            outcome = {"failed": False, "rejected": 0, "reason": ""}
        seconds = time.monotonic() - started
    with Store.open(connected) as store:
        stored = [record.source_id for record in probe]
        stored = [source_id for source_id in stored if source_id not in missing_ids(store, stored, PROBE_TENANT)]
    return {"timed out": False, **outcome, "seconds": round(seconds, 2), "objects": len(probe), "stored": stored}


def wait_until_marked_down(cluster: LocalCluster, node: int, seen_by: int, timeout: float = 60.0) -> None:
    """Wait until node ``seen_by`` stops reporting ``node`` HEALTHY (gossip noticed it is gone)."""
    started = time.monotonic()
    name = cluster.nodes[node].name
    while time.monotonic() - started < timeout:
        if cluster.status(seen_by)["health"].get(name) != "HEALTHY":
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


def backup_and_restore(store: Store, tenants: Sequence[str], backup_id: str,
                       backend: str = "filesystem") -> dict[str, Any]:
    """Back up the multi-tenant collection, drop it, restore it, and compare every object with what was there."""
    before = snapshot(store, tenants)
    started = time.monotonic()
    backup(store, backup_id, [ARTICLES], backend)
    backed_up = time.monotonic() - started
    store.client.collections.delete(ARTICLES)
    started = time.monotonic()
    restore(store, backup_id, [ARTICLES], backend)
    restored = time.monotonic() - started
    after = snapshot(store, tenants)
    equal = sum(1 for key, value in before.items() if after.get(key) == value)
    return {"objects": len(before), "equal": equal, "extra after restore": len(set(after) - set(before)),
            "tenants": len(tenants), "backup seconds": round(backed_up, 1), "restore seconds": round(restored, 1)}


S3_BUCKET = "medrag-backups"
S3_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "medrag-reliability", "AWS_SECRET_ACCESS_KEY": "medrag-reliability-secret",
                  "AWS_REGION": "us-east-1"}


@contextlib.contextmanager
def s3_store() -> Iterator[dict[str, str]]:
    """An S3-compatible store on loopback with one bucket, served by moto (a hospital points ``backup-s3`` at its
    own S3, MinIO or Ceph); yields the environment every node needs to back up there."""
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError as error:
        raise StoreError("the cluster area backs up to an S3 store served by moto: install the dev extras "
                         "(`make setup`)") from error
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # port 0: the system picks one
    with logger_level(logging.getLogger("werkzeug"), logging.ERROR):  # else one line per request
        server.start()
        try:
            endpoint = "{}:{}".format(*server.get_host_and_port())
            boto3.client("s3", endpoint_url=f"http://{endpoint}", aws_access_key_id=S3_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                         aws_secret_access_key=S3_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                         region_name=S3_CREDENTIALS["AWS_REGION"]).create_bucket(Bucket=S3_BUCKET)
            yield {"ENABLE_MODULES": "backup-filesystem,backup-s3", "BACKUP_S3_BUCKET": S3_BUCKET,
                   "BACKUP_S3_ENDPOINT": endpoint, "BACKUP_S3_USE_SSL": "false", **S3_CREDENTIALS}
        finally:
            server.stop()


def cluster_backup_refusal(store: Store) -> str:
    """What a filesystem backup on the cluster does: Weaviate 1.39 refuses it, and medrag must name the fix."""
    try:
        backup(store, f"cluster-{int(time.time())}", [ARTICLES])
    except StoreError as error:
        return str(error)
    return "accepted"


def pick_nodes(cluster: LocalCluster, formed: Mapping[str, Any], lose: str) -> tuple[int, int]:
    """(victim, entry): the node to kill, the Raft leader or a follower, and the live node medrag talks to (a
    hospital's load balancer would send it to one). The leader is whichever node won the election: choosing the
    victim by role keeps the scenario the same from run to run."""
    names = [node.name for node in cluster.nodes]
    leader = names.index(formed["leader"])
    victim = leader if lose == "leader" else max(index for index in range(len(names)) if index != leader)
    return victim, min(index for index in range(len(names)) if index != victim)


def cluster_scenario(config: Config, root: Path, quick: bool, lose: str = "follower") -> dict[str, Any]:
    """Node loss (``lose``: "follower" or "leader"), the write at ALL, the restarted node's catch-up, the filesystem
    backup's refusal, and a backup to S3 of the multi-tenant collection, dropped, restored and compared, on a fresh
    cluster.

    Losing the Raft leader is the harder case: a node that must ask the leader about a tenant's shards waits for the
    election, so writes stall (about a minute on 1.39 here) where a follower's loss costs nothing.
    """
    binary = find_binary(config)
    if binary is None:
        raise StoreError("no weaviate-server binary for the cluster: run `make setup` or set MEDRAG_WEAVIATE_BIN")
    if lose not in LOSSES:
        raise ValueError(f"lose={lose!r}: choose one of {', '.join(LOSSES)}")
    before, during, batch = (200, 300, 50) if quick else (2000, 6000, 200)
    with s3_store() as s3, LocalCluster(binary.path, root,
                                        server_env={**(FAST_REPAIR if quick else {}), **s3}) as cluster:
        formed = cluster.status()
        victim, entry = pick_nodes(cluster, formed, lose)
        settings = cluster.config(config, entry).replace(weaviate={"batch_size": batch,
                                                                   "timeout": max(config.weaviate.timeout, SLOW_S)})
        with Store.open(settings) as store:
            store.ensure_schema([collection_spec(ARTICLES)])
            factor = store.client.collections.use(ARTICLES).config.get().replication_config.factor
            for tenant in (TENANT, PROBE_TENANT, OTHER_TENANT):
                store.create_tenant(tenant, [ARTICLES])
            store.upsert(ARTICLES, records(OTHER_TENANT, 0, before // 2), tenant=OTHER_TENANT)
            first = records("before", 0, before)
            store.upsert(ARTICLES, first, tenant=TENANT)
            loss = NodeLoss(acknowledged=[record.source_id for record in first])
            cluster.nodes[victim].kill()
            killed = time.monotonic()
            early = write_at_all(settings, "all-early", retries=False)
            ingest_and_search(store, records("during", 0, during), loss, batch)
            ingest_seconds = time.monotonic() - killed
            wait_until_marked_down(cluster, victim, seen_by=entry)
            late = write_at_all(settings, "all-late", retries=True)
            expected = list(loss.acknowledged)
            _, counted = loss.attempt(lambda: store.count(ARTICLES, tenant=TENANT))
            _, lost = loss.attempt(lambda: missing_ids(store, expected, TENANT))
            probes = early["stored"] + late["stored"]
            recovery = catch_up(config, cluster, victim, {TENANT: expected, PROBE_TENANT: probes},
                                timeout=120 if quick else 600)
            refusal = cluster_backup_refusal(store)
            restored = backup_and_restore(store, [TENANT, PROBE_TENANT, OTHER_TENANT],
                                          f"cluster-{lose}-{int(time.time())}", backend="s3")
    return {
        "cluster at start": formed, "replication factor": factor,
        "node lost": f"{cluster.nodes[victim].name} ({lose}); medrag connected to {cluster.nodes[entry].name}",
        "objects": before + during, "acknowledged": len(expected), "counted at QUORUM": counted,
        "lost": len(expected) if lost is None else len(lost), "operations while down": loss.operations,
        "errors while down": loss.errors, "ingest seconds while down": round(ingest_seconds, 1),
        "longest operation seconds while down": round(loss.longest_seconds, 1),
        "write at ALL right after the kill": early, "write at ALL once the node is marked down": late,
        "recovery": recovery,
        "filesystem backup on the cluster": refusal,
        "backup to S3 of the multi-tenant collection": restored,
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
    """One line for a write at ALL: rejected with the server's reason, accepted, or unanswered; and how long it took."""
    if write["timed out"]:
        return f"no answer within the client's timeout ({write['seconds']} s); {len(write['stored'])} stored"
    if write["failed"]:
        return f"rejected {write['rejected']}/{write['objects']} in {write['seconds']} s ({write['reason'][:100]})"
    return f"accepted {len(write['stored'])}/{write['objects']} in {write['seconds']} s"


def restored_whole(restored: Mapping[str, Any]) -> bool:
    """Every object back, equal in properties and vectors, and nothing more."""
    return restored["equal"] == restored["objects"] > 0 and restored["extra after restore"] == 0


def node_loss_passed(figures: Mapping[str, Any], lose: str) -> bool:
    """No error and no lost object while the node was down, every object counted, the restarted node caught up; after
    a follower's loss both writes at ALL were also answered within ``ALL_WRITE_BOUND_S`` (the leader's loss stalls
    writes until the election: that time is reported, not bounded)."""
    early, late = figures["write at ALL right after the kill"], figures["write at ALL once the node is marked down"]
    return (not figures["errors while down"] and figures["lost"] == 0
            and figures["counted at QUORUM"] == figures["acknowledged"] == figures["objects"]
            and figures["recovery"]["holds every object seconds"] is not None
            and (lose == "leader" or max(early["seconds"], late["seconds"]) <= ALL_WRITE_BOUND_S)
            and "single node only" in figures["filesystem backup on the cluster"]
            and restored_whole(figures["backup to S3 of the multi-tenant collection"]))


def run(config: Config, out_dir: Path, quick: bool) -> dict[str, Any]:
    """Run the scenario in a temporary folder, a follower's loss (and in the full run the leader's, on a fresh
    cluster); ``out_dir`` is unused (the runner writes the figures)."""
    losses = ("follower",) if quick else LOSSES
    with tempfile.TemporaryDirectory(prefix="medrag-cluster-") as folder:
        figures: dict[str, Any] = {f"{lose} loss": cluster_scenario(config, Path(folder) / lose, quick, lose)
                                   for lose in losses}
        restored = backup_scenario(config, Path(folder), quick)
    headline: dict[str, Any] = {
        "node-loss errors": sum(len(figures[f"{lose} loss"]["errors while down"]) for lose in losses),
        "objects lost": sum(figures[f"{lose} loss"]["lost"] for lose in losses),
    }
    for lose in losses:
        scenario = figures[f"{lose} loss"]
        early = scenario["write at ALL right after the kill"]
        late = scenario["write at ALL once the node is marked down"]
        headline[f"{lose} loss"] = (
            f"{len(scenario['errors while down'])} errors, {scenario['lost']} lost, longest operation "
            f"{scenario['longest operation seconds while down']} s, restarted node holds every object after "
            f"{scenario['recovery']['holds every object seconds']} s; write at ALL right after the kill, first "
            f"answer: {describe(early)}; once the node is marked down, with medrag's retries: {describe(late)}")
    first = figures[f"{losses[0]} loss"]
    headline["filesystem backup/restore on one node, objects equal"] = f"{restored['equal']}/{restored['objects']}"
    headline["filesystem backup on the cluster"] = first["filesystem backup on the cluster"][:120]
    on_s3 = first["backup to S3 of the multi-tenant collection"]
    headline["backup to S3 on the cluster, objects equal"] = (
        f"{on_s3['equal']}/{on_s3['objects']} in {on_s3['tenants']} tenants (backup {on_s3['backup seconds']} s, "
        f"restore {on_s3['restore seconds']} s)")
    passed = all(node_loss_passed(figures[f"{lose} loss"], lose) for lose in losses) and restored_whole(restored)
    return {"headline": headline, "passed": passed, **figures, "backup": restored}


register_suite("cluster", run)
