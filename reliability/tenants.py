"""Tenants area: one hospital's key against another hospital's data, on a real Weaviate server with RBAC on.

A fresh server (medrag's embedded server code, in a temporary home) gets two hospitals, each provisioned by the root
key and each writing its objects into every collection through its own key. Then, in both directions:

- **leak attempts**: searches in the key's own tenant seeded with the other hospital's vectors, words, years and
  object ids (vector, keyword, hybrid, hybrid with a filter, fetch by source id, fetch by uuid, filter on id and on
  source id, a walk over every object); any object of the other hospital in any answer is a leak;
- **refusal attempts**: every Store call and every raw weaviate-client call (medrag bypassed) that names the other
  hospital's tenant; each must be refused by the server (403), which must log an "authorization denied" entry.

The quick run uses 10 objects per collection and hospital and one seed object each; the full run 100 objects and
ten seeds, so more distinct ids and vectors are tried. ``config`` gives the binary and caches; the data is synthetic
report-like text with seeded unit vectors (what isolation is tested against does not need a model).
"""

from __future__ import annotations

import json
import logging
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from weaviate.classes.query import Filter
from weaviate.exceptions import InsufficientPermissionsError

from medrag.config import Config
from medrag.sources import collections
from medrag.store import TEXT_VECTOR, AccessDenied, Filters, Record, Store, object_uuid
from medrag.store.tenants import key_path
from reliability import logger_level, register_suite

HOSPITALS = ("north", "south")
DIMENSIONS = 32
FINDINGS = ("no acute findings", "right lower lobe consolidation", "small left pleural effusion",
            "cardiomegaly without edema", "bilateral interstitial opacities")
"""Shared words, so that a keyword query made from one hospital's text would match the other's objects too."""


def records(hospital: str, collection: str, count: int) -> list[Record]:
    """Report-like objects with seeded unit vectors: the same hospital, collection and index give the same data."""
    made = []
    for index in range(count):
        generator = random.Random(f"{hospital}-{collection}-{index}")
        vector = [generator.gauss(0.0, 1.0) for _ in range(DIMENSIONS)]
        norm = sum(value * value for value in vector) ** 0.5
        made.append(Record(f"{hospital}-{collection}-{index}",
                           {"text": f"chest radiograph {index}: {FINDINGS[index % len(FINDINGS)]}",
                            "year": 2000 + index % 20, "source": "reliability", "modality": "text"},
                           {TEXT_VECTOR: [value / norm for value in vector]}))
    return made


def _leak_queries(store: Store, collection: str, seed: Record) -> dict[str, Callable[[], list[tuple[str, str]]]]:
    """Queries in the store's own tenant built from another hospital's object ``seed``: (source id, uuid) answers."""
    vector, text, year = seed.vectors[TEXT_VECTOR], str(seed.properties["text"]), seed.properties["year"]
    uuid = object_uuid(collection, seed.source_id)
    raw = store.client.collections.use(collection).with_tenant(store.config.weaviate.tenant)

    def hits(found: list[Any]) -> list[tuple[str, str]]:
        return [(hit.source_id, hit.uuid) for hit in found]

    def raw_hits(found: list[Any]) -> list[tuple[str, str]]:
        return [(item.properties["source_id"], str(item.uuid)) for item in found]

    return {
        "near_vector": lambda: hits(store.near_vector(collection, vector, limit=100)),
        "bm25": lambda: hits(store.bm25(collection, text, limit=100)),
        "hybrid": lambda: hits(store.hybrid(collection, text, vector, limit=100)),
        "hybrid with a year filter": lambda: hits(store.hybrid(collection, text, vector, limit=100,
                                                               filters=Filters(year_from=year, year_to=year))),
        "fetch by source id": lambda: hits([hit for hit in [store.fetch(collection, seed.source_id)] if hit]),
        "raw fetch_object_by_id": lambda: raw_hits([item for item in [raw.query.fetch_object_by_id(uuid)] if item]),
        "raw filter on id": lambda: raw_hits(raw.query.fetch_objects(filters=Filter.by_id().equal(uuid)).objects),
        "raw filter on source_id": lambda: raw_hits(raw.query.fetch_objects(
            filters=Filter.by_property("source_id").equal(seed.source_id)).objects),
        "every object": lambda: [(item["source_id"], object_uuid(collection, item["source_id"]))
                                 for item in store.properties(collection, ["source_id"])],
    }


def _refusal_calls(store: Store, collection: str, tenant: str, seed: Record) -> dict[str, Callable[[], Any]]:
    """Every Store call and raw client call that names ``tenant``; each must raise the server's refusal."""
    vector = seed.vectors[TEXT_VECTOR]
    raw = store.client.collections.use(collection).with_tenant(tenant)
    uuid = object_uuid(collection, seed.source_id)
    planted = Record(f"planted-{seed.source_id}", {"text": "planted"}, seed.vectors)
    return {
        "Store.near_vector": lambda: store.near_vector(collection, vector, tenant=tenant),
        "Store.bm25": lambda: store.bm25(collection, "radiograph", tenant=tenant),
        "Store.hybrid": lambda: store.hybrid(collection, "radiograph", vector, tenant=tenant),
        "Store.fetch": lambda: store.fetch(collection, seed.source_id, tenant=tenant),
        "Store.count": lambda: store.count(collection, tenant=tenant),
        "Store.stored_hashes": lambda: store.stored_hashes(collection, [seed.source_id], tenant=tenant),
        "Store.properties": lambda: list(store.properties(collection, ["source_id"], tenant=tenant)),
        "Store.upsert": lambda: store.upsert(collection, [planted], tenant=tenant),
        "raw fetch_objects": lambda: raw.query.fetch_objects(limit=5),
        "raw near_vector": lambda: raw.query.near_vector(list(vector), target_vector=TEXT_VECTOR, limit=5),
        "raw bm25": lambda: raw.query.bm25("radiograph", limit=5),
        "raw hybrid": lambda: raw.query.hybrid("radiograph", vector=list(vector), target_vector=TEXT_VECTOR),
        "raw fetch_object_by_id": lambda: raw.query.fetch_object_by_id(uuid),
        "raw aggregate": lambda: raw.aggregate.over_all(total_count=True),
        "raw insert": lambda: raw.data.insert({"text": "planted"}, vector={TEXT_VECTOR: list(vector)}),
        "raw delete": lambda: raw.data.delete_by_id(uuid),
    }


def _refused(call: Callable[[], Any]) -> tuple[bool, str]:
    """Whether the server refused the call (AccessDenied through medrag, 403 through the raw client), and how."""
    try:
        call()
    except (AccessDenied, InsufficientPermissionsError) as error:
        return True, type(error).__name__
    except Exception as error:  # any other outcome is a failure of the area, reported with its type
        return False, f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    return False, "answered"


def _server_denials(log_path: Path) -> dict[str, int]:
    """Weaviate's "authorization denied" log entries per user."""
    counts: dict[str, int] = {}
    for line in log_path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("msg") == "authorization denied":
                counts[entry.get("user", "?")] = counts.get(entry.get("user", "?"), 0) + 1
    return counts


def run(config: Config, out_dir: Path, quick: bool) -> dict[str, Any]:
    """Provision two hospitals on a fresh RBAC server, then try each against the other; ``out_dir`` is unused (the
    runner writes the figures)."""
    per_collection, seeds = (10, 1) if quick else (100, 10)
    leaks: list[str] = []
    leak_attempts = own_answers = own_searches = 0
    refusals: dict[str, int] = {}
    not_refused: list[str] = []
    # The Store logs each refusal as a warning (a hospital wants those seen); here every one is intended and counted
    # from the server's own log, so 960 warnings on the terminal would hide the figures.
    quiet = logging.getLogger("medrag.store.store")
    with tempfile.TemporaryDirectory(prefix="medrag-tenants-") as folder, logger_level(quiet, logging.ERROR):
        home = Path(folder)
        settings = config.replace(home=home, weaviate={"rbac": True, "url": None, "data_dir": None, "port": None,
                                                       "api_key": None, "key_file": None})
        with Store.open(settings, log=lambda message: None) as admin:
            files = {name: admin.provision_tenant(name).save(key_path(home, name)) for name in HOSPITALS}
            stores = {name: Store.open(settings.replace(weaviate={
                "url": admin.url, "grpc_port": admin.server.grpc_port, "key_file": files[name], "tenant": name}))
                for name in HOSPITALS}
            try:
                data = {name: {collection: records(name, collection, per_collection) for collection in collections()}
                        for name in HOSPITALS}
                for name, store in stores.items():
                    for collection, items in data[name].items():
                        store.upsert(collection, items)
                for name, store in stores.items():
                    other = next(hospital for hospital in HOSPITALS if hospital != name)
                    for collection in collections():
                        theirs = {(item.source_id, str(object_uuid(collection, item.source_id)))
                                  for item in data[other][collection]}
                        for seed in data[other][collection][:seeds]:
                            for query, search in _leak_queries(store, collection, seed).items():
                                answer = search()
                                leak_attempts += 1
                                if query in ("near_vector", "hybrid", "every object"):
                                    own_searches += 1
                                    own_answers += bool(answer)
                                leaks += [f"{name} got {source_id} by {query} in {collection}"
                                          for source_id, uuid in answer
                                          if (source_id, uuid) in theirs or source_id.startswith(f"{other}-")]
                            for call_name, call in _refusal_calls(store, collection, other, seed).items():
                                refused, how = _refused(call)
                                refusals[call_name] = refusals.get(call_name, 0) + refused
                                if not refused:
                                    not_refused.append(f"{name} -> {other}: {call_name} in {collection}: {how}")
                intact = all(admin.count(collection, tenant=name) == len(items)
                             for name in HOSPITALS for collection, items in data[name].items())
            finally:
                for store in stores.values():
                    store.close()
            denials = _server_denials(admin.server.log_path)
    attempts = sum(refusals.values()) + len(not_refused)
    refused_count = sum(refusals.values())
    logged = sum(denials.get(f"hospital-{name}", 0) for name in HOSPITALS)
    passed = (not leaks and not not_refused and own_answers == own_searches and intact and logged >= attempts)
    return {
        "headline": {"cross-tenant leaks": len(leaks),
                     "cross-tenant attempts refused": f"{refused_count}/{attempts}",
                     "leak attempts (queries in the own tenant seeded with the other's data)": leak_attempts,
                     "refusals in the server log": logged,
                     "other tenant's data unchanged": "yes" if intact else "NO"},
        "passed": passed,
        "objects per collection and hospital": per_collection, "seeds": seeds,
        "own-tenant searches answered": f"{own_answers}/{own_searches}",
        "refused per call": refusals, "not refused": not_refused, "leaks": leaks[:50],
        "server denials per user": denials,
    }


register_suite("tenants", run)
