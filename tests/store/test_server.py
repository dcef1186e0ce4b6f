"""Lifecycle and faults of the embedded server, each with its own real Weaviate process.

These tests stop, kill and restart servers, so they cannot share the session server; everything
else in the suite uses that one.
"""

from __future__ import annotations

import json
import socket
import threading

import pytest

from medrag.store import ARTICLES, TEXT_VECTOR, ConnectionFailed, Record, ServerStartError, Store, StoreError
from medrag.store.connection import connect_client
from medrag.store.server import LOCK_FILE, EmbeddedServer


@pytest.fixture
def own_config(config, tmp_path, weaviate_binary):
    """A private home, so this test's server has a data dir of its own."""
    return config.replace(home=tmp_path / "home")


def _records(count: int, prefix: str = "doc") -> list[Record]:
    return [
        Record(f"{prefix}-{i}", {"text": f"chest radiograph report {i}", "year": 2000 + i % 20},
               {TEXT_VECTOR: [float((i >> bit) & 1) for bit in range(8)]})
        for i in range(count)
    ]


def test_data_survives_a_restart(own_config):
    with Store.open(own_config) as store:
        store.ensure_schema()
        store.create_tenant()
        store.upsert(ARTICLES, _records(50))
        first_url = store.url
    with Store.open(own_config) as store:
        assert store.count(ARTICLES) == 50
        assert store.fetch(ARTICLES, "doc-7").properties["year"] == 2007
        assert store.url != first_url or store.server.pid is not None


def test_kill_during_batch_import_loses_nothing_acknowledged(own_config):
    """kill -9 the server mid-import: every batch it acknowledged is there after a restart."""
    config = own_config.replace(weaviate={"batch_size": 50})
    acknowledged: list[str] = []
    killed = threading.Event()
    with Store.open(config) as store:
        store.ensure_schema()
        store.create_tenant()

        def on_written(ids: list[str]) -> None:
            acknowledged.extend(ids)
            if len(acknowledged) >= 500 and not killed.is_set():
                killed.set()
                store.server.kill()

        with pytest.raises(StoreError, match="server is gone"):
            store.upsert(ARTICLES, _records(5000), on_written=on_written)
    assert killed.is_set() and len(acknowledged) >= 500
    with Store.open(config) as store:
        stored = store.count(ARTICLES)
        assert stored >= len(acknowledged)
        missing = [i for i in acknowledged if store.fetch(ARTICLES, i) is None]
        assert missing == []


def test_dead_server_gives_one_clear_error(own_config):
    with Store.open(own_config) as store:
        store.ensure_schema()
        store.create_tenant()
        store.server.kill()
        with pytest.raises(StoreError) as error:
            store.count(ARTICLES)
    message = str(error.value)
    assert "server is gone" in message and "exited with code" in message
    assert "weaviate.log" in message


def test_second_server_on_the_same_data_dir_is_refused(own_config, weaviate_binary):
    with Store.open(own_config) as store:
        with pytest.raises(ServerStartError, match=f"in use by Weaviate pid {store.server.pid}") as error:
            EmbeddedServer(weaviate_binary.path, store.server.data_dir).start()
        assert "MEDRAG_WEAVIATE_DATA_DIR" in str(error.value)


def test_stale_lock_of_a_dead_process_is_taken_over(own_config, weaviate_binary):
    data_dir = own_config.weaviate_data_dir
    data_dir.mkdir(parents=True)
    (data_dir / LOCK_FILE).write_text(json.dumps({"pid": 999999, "url": "http://127.0.0.1:1"}))
    with EmbeddedServer(weaviate_binary.path, data_dir) as server:
        assert json.loads((data_dir / LOCK_FILE).read_text())["pid"] == server.pid


def test_taken_port_is_a_clear_error(own_config, weaviate_binary):
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ServerStartError, match=f"port {port} .* already in use") as error:
            EmbeddedServer(weaviate_binary.path, own_config.weaviate_data_dir, port=port).start()
    assert "MEDRAG_WEAVIATE_PORT" in str(error.value)


def test_wrong_api_key_is_a_clear_error(store, config):
    with pytest.raises(ConnectionFailed, match="rejected the API key") as error:
        connect_client(store.url, "not-the-key", config, grpc_port=store.server.grpc_port)
    assert "MEDRAG_WEAVIATE_API_KEY" in str(error.value)


def test_unreachable_url_is_a_clear_error_not_a_hang(config):
    closed_ports = []
    for _ in range(2):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            closed_ports.append(probe.getsockname()[1])
    http_port, grpc_port = closed_ports
    settings = config.replace(weaviate={"url": f"http://127.0.0.1:{http_port}", "grpc_port": grpc_port,
                                        "timeout": 3.0})
    with pytest.raises(ConnectionFailed, match="cannot reach Weaviate") as error:
        Store.open(settings)
    assert "MEDRAG_WEAVIATE_URL" in str(error.value)


def test_external_url_mode_connects_without_starting_a_server(store, config):
    external = config.replace(weaviate={"url": store.url, "api_key": store.server.api_key,
                                        "grpc_port": store.server.grpc_port})
    with Store.open(external) as client_only:
        assert client_only.server is None
        assert ARTICLES in client_only.client.collections.list_all()


def test_malformed_url_is_a_clear_error(config):
    with pytest.raises(ConnectionFailed, match="not an http"):
        Store.open(config.replace(weaviate={"url": "weaviate.local:8080"}))


def test_same_http_and_grpc_port_is_a_clear_error(config):
    with pytest.raises(ConnectionFailed, match="invalid Weaviate connection settings"):
        Store.open(config.replace(weaviate={"url": "http://127.0.0.1:8080", "grpc_port": 8080}))
