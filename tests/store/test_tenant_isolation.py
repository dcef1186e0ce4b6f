"""Tenants enforced by the server: a hospital's key reaches its own tenant and nothing else (Weaviate RBAC).

One RBAC-enabled server for the module, started by medrag's own server code in a temporary home. Two hospitals,
north and south, each provisioned by the root key and each ingesting real PubMedQA abstracts through its own key.
Then, with north's key, every kind of query aimed at south's objects (their vectors, their words, their ids) must
return none of them, and every request that names tenant south must be refused by the server: the raw client
calls prove that the refusal is Weaviate's, not medrag's, and the server's log and medrag's logger must record it.
"""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from weaviate.classes.query import Filter
from weaviate.exceptions import InsufficientPermissionsError

from medrag.config import Config
from medrag.ingest.pipeline import Ingestor
from medrag.sources import collections
from medrag.store import (
    ARTICLES,
    TEXT_VECTOR,
    AccessDenied,
    ConnectionFailed,
    Filters,
    Hit,
    Record,
    Store,
    StoreError,
    TenantKey,
    object_uuid,
)
from medrag.store.tenants import key_path

NORTH, SOUTH = "north", "south"
PER_HOSPITAL = 8


def _abstracts(pubmedqa: dict[str, dict], start: int, text_encoder: Any) -> list[Record]:
    """``PER_HOSPITAL`` real PubMedQA abstracts from ``start`` (those with a year), with MiniLM vectors."""
    entries = [(pmid, entry) for pmid, entry in pubmedqa.items() if entry["YEAR"]][start:start + PER_HOSPITAL]
    texts = [" ".join(entry["CONTEXTS"]) for _, entry in entries]
    return [Record(pmid, {"text": text, "year": int(entry["YEAR"]), "source": "pubmedqa", "modality": "text"},
                   {TEXT_VECTOR: vector})
            for (pmid, entry), text, vector in zip(entries, texts, text_encoder.encode(texts), strict=True)]


def hospital_config(base: Config, admin: Store, key_file: Path, tenant: str) -> Config:
    """How a hospital connects to the shared server: its URL, its key file, its tenant; no root key."""
    return base.replace(weaviate={"url": admin.url, "grpc_port": admin.server.grpc_port, "api_key": None,
                                  "key_file": key_file, "tenant": tenant})


@pytest.fixture(scope="module")
def hospitals(config: Config, weaviate_binary: Any, tmp_path_factory: pytest.TempPathFactory,
              pubmedqa: dict[str, dict], text_encoder: Any) -> Iterator[SimpleNamespace]:
    """The RBAC server, north's and south's keys and stores, and what each ingested through its own key."""
    home = tmp_path_factory.mktemp("rbac-home")
    admin_config = config.replace(home=home, weaviate={"rbac": True, "api_key": None, "key_file": None})
    with Store.open(admin_config) as admin:
        files = {name: admin.provision_tenant(name).save(key_path(home, name)) for name in (NORTH, SOUTH)}
        stores = {name: Store.open(hospital_config(admin_config, admin, files[name], name)) for name in files}
        data: dict[str, dict[str, list[Record]]] = {}
        for offset, name in enumerate((NORTH, SOUTH)):
            articles = _abstracts(pubmedqa, offset * PER_HOSPITAL, text_encoder)
            questions = home / f"{name}-pubmedqa.json"
            questions.write_text(json.dumps({record.source_id: pubmedqa[record.source_id] for record in articles}))
            Ingestor(stores[name].config, stores[name], text_encoder=text_encoder, joint=False,
                     progress=False).pubmed([questions])
            data[name] = {ARTICLES: articles}
            for collection in collections():
                if collection != ARTICLES:
                    copies = [Record(f"{collection}-{record.source_id}", record.properties, record.vectors)
                              for record in articles]
                    stores[name].upsert(collection, copies)
                    data[name][collection] = copies
        try:
            yield SimpleNamespace(admin=admin, home=home, config=admin_config, files=files, stores=stores, data=data)
        finally:
            for opened in stores.values():
                opened.close()


def _south_ids(hospitals: SimpleNamespace) -> tuple[set[str], set[str]]:
    """South's source ids and object uuids over every collection: what must never reach north."""
    source_ids = {record.source_id for records in hospitals.data[SOUTH].values() for record in records}
    uuids = {object_uuid(collection, record.source_id)
             for collection, records in hospitals.data[SOUTH].items() for record in records}
    return source_ids, uuids


def test_key_files_are_private_and_the_store_holds_only_the_hospital_key(hospitals):
    for name, path in hospitals.files.items():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        key = TenantKey.load(path)
        assert (key.tenant, key.user, key.role) == (name, f"hospital-{name}", f"medrag-tenant-{name}")
        assert key.key not in repr(key)
        assert key.key != hospitals.admin.server.api_key
        store = hospitals.stores[name]
        assert store.server is None and store.tenant_key == key
        assert store.client.users.get_my_user().user_id == f"hospital-{name}"  # the server sees the hospital


def test_both_hospitals_really_hold_their_data(hospitals):
    """The root key sees both tenants full, so the leak counts below are not zero for want of data."""
    for name in (NORTH, SOUTH):
        for collection, records in hospitals.data[name].items():
            assert hospitals.admin.count(collection, tenant=name) == len(records)
            assert hospitals.stores[name].count(collection) == len(records)


def test_no_query_with_north_key_returns_south_objects(hospitals):
    """Queries built from south's vectors, words, years and ids, in north's tenant: none may return south's
    objects, and the searches must return north's (so the store answered at all)."""
    north = hospitals.stores[NORTH]
    south_source_ids, south_uuids = _south_ids(hospitals)
    attempts, leaks = 0, []

    def check(what: str, hits: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Count the attempt and any (source id, uuid) of south's among the hits."""
        nonlocal attempts
        attempts += 1
        leaks.extend(f"{what}: {source_id}" for source_id, uuid in hits
                     if source_id in south_source_ids or uuid in south_uuids)
        return hits

    def ids(hits: list[Hit]) -> list[tuple[str, str]]:
        return [(hit.source_id, hit.uuid) for hit in hits]

    def raw_ids(items: list[Any]) -> list[tuple[str, str]]:
        return [(item.properties["source_id"], str(item.uuid)) for item in items]

    for collection, records in hospitals.data[SOUTH].items():
        raw = north.client.collections.use(collection).with_tenant(NORTH)
        for record in records[:4]:
            vector, text = record.vectors[TEXT_VECTOR], " ".join(str(record.properties["text"]).split()[:12])
            same_year = Filters(year_from=record.properties["year"], year_to=record.properties["year"])
            # north's own objects answer the vector and hybrid searches, so an empty answer cannot pass for isolation
            assert check("near_vector", ids(north.near_vector(collection, vector, limit=50)))
            check("bm25", ids(north.bm25(collection, text, limit=50)))
            assert check("hybrid", ids(north.hybrid(collection, text, vector, limit=50)))
            check("hybrid+filter", ids(north.hybrid(collection, text, vector, filters=same_year, limit=50)))
            check("fetch", ids([hit for hit in [north.fetch(collection, record.source_id)] if hit]))
            uuid = object_uuid(collection, record.source_id)
            found = raw.query.fetch_object_by_id(uuid)
            check("raw fetch_object_by_id", raw_ids([] if found is None else [found]))
            for where in (Filter.by_id().equal(uuid), Filter.by_property("source_id").equal(record.source_id)):
                check("raw fetch_objects+filter", raw_ids(raw.query.fetch_objects(filters=where, limit=50).objects))
        check("every object", [(item["source_id"], object_uuid(collection, item["source_id"]))
                               for item in north.properties(collection, ["source_id"])])
        assert north.count(collection) == len(hospitals.data[NORTH][collection])
        assert north.stored_hashes(collection, [record.source_id for record in records]) == {}
    assert attempts == len(hospitals.data[SOUTH]) * (4 * 8 + 1)
    assert leaks == []


def _server_denials(hospitals: SimpleNamespace, user: str, tenant: str) -> list[dict[str, Any]]:
    """The server log's "authorization denied" entries of ``user`` for ``tenant``."""
    entries = []
    for line in hospitals.admin.server.log_path.read_text().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if (entry.get("msg") == "authorization denied" and entry.get("user") == user
                    and f"Tenant: {tenant}" in entry.get("resource", "")):
                entries.append(entry)
    return entries


def _store_calls(store: Store, tenant: str, probe: Record) -> dict[str, Callable[[], Any]]:
    """Every Store call that names a tenant, aimed at ``tenant``."""
    vector = probe.vectors[TEXT_VECTOR]
    return {
        "near_vector": lambda: store.near_vector(ARTICLES, vector, tenant=tenant),
        "bm25": lambda: store.bm25(ARTICLES, "pneumonia", tenant=tenant),
        "hybrid": lambda: store.hybrid(ARTICLES, "pneumonia", vector, tenant=tenant),
        "hybrid+filter": lambda: store.hybrid(ARTICLES, "pneumonia", vector, filters=Filters(year_from=1990),
                                              tenant=tenant),
        "fetch": lambda: store.fetch(ARTICLES, probe.source_id, tenant=tenant),
        "count": lambda: store.count(ARTICLES, tenant=tenant),
        "stored_hashes": lambda: store.stored_hashes(ARTICLES, [probe.source_id], tenant=tenant),
        "properties": lambda: list(store.properties(ARTICLES, ["source_id"], tenant=tenant)),
        "upsert": lambda: store.upsert(ARTICLES, [Record("planted", {"text": "planted by north"}, probe.vectors)],
                                       tenant=tenant),
    }


def _raw_calls(store: Store, tenant: str | None, probe: Record) -> dict[str, Callable[[], Any]]:
    """The weaviate-client's own calls with the hospital key, medrag bypassed: what the server alone allows."""
    collection = store.client.collections.use(ARTICLES)
    target = collection.with_tenant(tenant) if tenant else collection
    vector = [float(value) for value in probe.vectors[TEXT_VECTOR]]  # the raw client sends JSON: no numpy floats
    return {
        "fetch_objects": lambda: target.query.fetch_objects(limit=5),
        "near_vector": lambda: target.query.near_vector(vector, target_vector=TEXT_VECTOR, limit=5),
        "bm25": lambda: target.query.bm25("pneumonia", limit=5),
        "hybrid": lambda: target.query.hybrid("pneumonia", vector=vector, target_vector=TEXT_VECTOR, limit=5),
        "fetch_object_by_id": lambda: target.query.fetch_object_by_id(object_uuid(ARTICLES, probe.source_id)),
        "aggregate": lambda: target.aggregate.over_all(total_count=True),
        "insert": lambda: target.data.insert({"text": "planted by north"}, vector={TEXT_VECTOR: vector}),
        "delete": lambda: target.data.delete_by_id(object_uuid(ARTICLES, probe.source_id)),
    }


def test_naming_south_with_north_key_is_refused_by_the_server_and_logged(hospitals, caplog):
    north = hospitals.stores[NORTH]
    probe = hospitals.data[SOUTH][ARTICLES][0]
    before = len(_server_denials(hospitals, "hospital-north", SOUTH))
    refused, attempts = 0, 0
    with caplog.at_level(logging.WARNING, logger="medrag.store.store"):
        for name, call in _store_calls(north, SOUTH, probe).items():
            attempts += 1
            with pytest.raises(AccessDenied) as error:
                call()
            refused += 1
            message = str(error.value)
            assert error.value.tenant == SOUTH and error.value.user == "hospital-north", name
            assert "HTTP 403" in message and f"tenant {SOUTH!r}" in message and "MEDRAG_WEAVIATE_KEY_FILE" in message
            assert "medrag tenant add south" in message
    for call in _raw_calls(north, SOUTH, probe).values():
        attempts += 1
        with pytest.raises(InsufficientPermissionsError, match=f"Tenant: {SOUTH}"):
            call()
        refused += 1
    assert refused == attempts == 17
    logged = [record for record in caplog.records if record.getMessage().startswith("Weaviate refused")]
    assert len(logged) == 9 and all("hospital-north" in record.getMessage() for record in logged)
    assert all(f"Tenant: {SOUTH}" in record.getMessage() for record in logged)
    denials = _server_denials(hospitals, "hospital-north", SOUTH)
    assert len(denials) - before >= attempts  # the server logs one or more denials per refused request
    assert {entry["perm"] for entry in denials} >= {"read_data", "create_data", "update_data", "delete_data"}
    key = TenantKey.load(hospitals.files[NORTH]).key
    assert key not in caplog.text and key not in hospitals.admin.server.log_path.read_text()
    assert hospitals.admin.count(ARTICLES, tenant=SOUTH) == PER_HOSPITAL  # nothing planted, nothing deleted


def test_no_tenant_and_unknown_tenants_are_refused_alike(hospitals):
    """A key cannot ask for every tenant at once, nor learn whether a tenant exists."""
    north = hospitals.stores[NORTH]
    probe = hospitals.data[NORTH][ARTICLES][0]
    for tenant in (None, "nowhere"):
        for call in _raw_calls(north, tenant, probe).values():
            with pytest.raises(InsufficientPermissionsError, match="insufficient permissions"):
                call()
    with pytest.raises(AccessDenied, match="'nowhere'"):
        north.count(ARTICLES, tenant="nowhere")
    assert north.tenants(ARTICLES) == {NORTH}  # the tenant list shows north's own tenant alone


def test_assistant_with_north_key_sees_north_only(hospitals, text_encoder):
    """Text requests only: the joint image model is never loaded."""
    from medrag.assistant import Assistant

    north = hospitals.stores[NORTH]
    assistant = Assistant(north.config.replace(reranker="retrieval"), north, text_encoder=text_encoder)
    south_source_ids, _ = _south_ids(hospitals)
    north_ids = {record.source_id for records in hospitals.data[NORTH].values() for record in records}
    for record in hospitals.data[SOUTH][ARTICLES][:3]:
        question = " ".join(str(record.properties["text"]).split()[:30])
        found = {item.source_id for item in assistant.search(question, k=10).evidence}
        assert found and found <= north_ids and not found & south_source_ids
        with pytest.raises(AccessDenied, match=f"tenant {SOUTH!r}"):
            assistant.search(question, tenant=SOUTH)
        with pytest.raises(AccessDenied, match=f"tenant {SOUTH!r}"):
            assistant.ask(question, tenant=SOUTH, mode="extractive")


def test_read_only_key_searches_but_cannot_write_its_own_tenant(hospitals):
    path = hospitals.admin.provision_tenant("clinic", write=False).save(key_path(hospitals.home, "clinic"))
    probe = hospitals.data[NORTH][ARTICLES][0]
    with Store.open(hospital_config(hospitals.config, hospitals.admin, path, "clinic")) as clinic:
        assert clinic.near_vector(ARTICLES, probe.vectors[TEXT_VECTOR]) == []
        with pytest.raises(AccessDenied, match=r"may not (create|update)_data") as error:
            clinic.upsert(ARTICLES, [probe])
    assert error.value.tenant == "clinic"
    assert hospitals.admin.count(ARTICLES, tenant="clinic") == 0


def test_a_key_is_issued_once_and_rotating_it_revokes_the_old_one(hospitals, tmp_path):
    first = hospitals.admin.provision_tenant("rotated").save(tmp_path / "old.json")
    with pytest.raises(StoreError, match=r"already has a key.*--rotate"):
        hospitals.admin.provision_tenant("rotated")
    second = hospitals.admin.provision_tenant("rotated", rotate=True).save(tmp_path / "new.json")
    with pytest.raises(ConnectionFailed, match=r"rejected the API key.*old\.json.*--rotate"):
        Store.open(hospital_config(hospitals.config, hospitals.admin, first, "rotated"))
    with Store.open(hospital_config(hospitals.config, hospitals.admin, second, "rotated")) as rotated:
        assert rotated.count(ARTICLES) == 0


def test_key_file_of_another_tenant_is_refused_before_connecting(hospitals):
    settings = hospital_config(hospitals.config, hospitals.admin, hospitals.files[NORTH], SOUTH)
    with pytest.raises(StoreError, match="MEDRAG_WEAVIATE_TENANT=north"):
        Store.open(settings)
    with pytest.raises(StoreError, match="unset MEDRAG_WEAVIATE_API_KEY"):
        Store.open(settings.replace(weaviate={"tenant": NORTH, "api_key": hospitals.admin.server.api_key}))


def test_embedded_server_opened_with_a_key_file_keeps_roles_across_restarts(config, weaviate_binary, tmp_path,
                                                                             pubmedqa, text_encoder):
    """The hospital's process starts the server itself (embedded mode) and still only holds its own key."""
    admin_config = config.replace(home=tmp_path, weaviate={"rbac": True, "api_key": None, "key_file": None})
    records = _abstracts(pubmedqa, 0, text_encoder)
    with Store.open(admin_config) as admin:
        path = admin.provision_tenant("east").save(key_path(tmp_path, "east"))
        admin.create_tenant("west")
        admin.upsert(ARTICLES, records[:4], tenant="east")
        admin.upsert(ARTICLES, records[4:], tenant="west")
    with Store.open(admin_config.replace(weaviate={"key_file": path, "tenant": "east"})) as east:
        assert east.server is not None
        assert east.client.users.get_my_user().user_id == "hospital-east"
        assert east.count(ARTICLES) == 4
        hits = east.near_vector(ARTICLES, records[6].vectors[TEXT_VECTOR], limit=20)
        assert {hit.source_id for hit in hits} == {record.source_id for record in records[:4]}
        with pytest.raises(AccessDenied, match="tenant 'west'"):
            east.count(ARTICLES, tenant="west")


def test_provisioning_without_rbac_is_refused(store):
    with pytest.raises(StoreError, match="MEDRAG_WEAVIATE_RBAC=true"):
        store.provision_tenant("anyone")


def test_key_file_readable_by_others_is_refused(tmp_path):
    path = TenantKey("north", "hospital-north", "medrag-tenant-north", "secret").save(tmp_path / "keys" / "k.json")
    assert TenantKey.load(path).key == "secret"
    assert "secret" not in repr(TenantKey.load(path))
    path.chmod(0o644)
    with pytest.raises(StoreError, match="chmod 600"):
        TenantKey.load(path)
    with pytest.raises(StoreError, match="medrag tenant add"):
        TenantKey.load(tmp_path / "missing.json")


def test_tenant_names_that_cannot_name_a_role_are_refused(tmp_path):
    from medrag.store.tenants import check_tenant_name

    for bad in ("", "a b", "x" * 49, "north/../south"):
        with pytest.raises(StoreError, match="1 to 48 letters"):
            check_tenant_name(bad)
    assert key_path(tmp_path, "north") == tmp_path / "tenant-keys" / "north.json"


def test_reliability_area_tenants_quick(config, weaviate_binary, tmp_path):
    """``python -m reliability --only tenants --quick`` on its own server: no leak, every attempt refused."""
    from reliability.tenants import run

    figures = run(config, tmp_path, quick=True)
    refused, attempts = figures["headline"]["cross-tenant attempts refused"].split("/")
    assert figures["passed"] and figures["headline"]["cross-tenant leaks"] == 0
    assert refused == attempts and int(attempts) >= 90 and figures["not refused"] == []
    assert figures["headline"]["refusals in the server log"] >= int(attempts)


def test_cli_tenant_add_writes_the_key_file_and_prints_where_never_the_key(hospitals, monkeypatch, tmp_path,
                                                                          capsys):
    from medrag.cli import main

    admin = hospitals.admin
    for name, value in {"MEDRAG_HOME": str(tmp_path), "MEDRAG_WEAVIATE_URL": admin.url,
                        "MEDRAG_WEAVIATE_GRPC_PORT": str(admin.server.grpc_port),
                        "MEDRAG_WEAVIATE_API_KEY": admin.server.api_key}.items():
        monkeypatch.setenv(name, value)
    assert main(["tenant", "add", "cli-hospital", "--read-only"]) == 0
    path = tmp_path / "tenant-keys" / "cli-hospital.json"
    printed = capsys.readouterr().out
    assert str(path) in printed and "MEDRAG_WEAVIATE_TENANT=cli-hospital" in printed and "search only" in printed
    assert TenantKey.load(path).key not in printed
    assert main(["tenant", "add", "cli-hospital"]) == 2
    assert "--rotate" in capsys.readouterr().err
