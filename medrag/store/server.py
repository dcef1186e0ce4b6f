"""Run one Weaviate node as a child process: the embedded default of medrag.

The node gets its own data directory, free ports, API-key auth (anonymous access off) and a log
file in the data directory. With ``rbac`` the generated key belongs to the root user of Weaviate's
role-based access control and database users (one per hospital, ``Store.provision_tenant``) can be
created through the API; without it every key may do everything. A lock file in the data directory,
held by the server process itself, keeps two servers off the same data; a lock left by a dead process
is taken over.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from medrag.store.errors import ServerStartError

LOCK_FILE = "medrag-server.lock"
KEY_FILE = "medrag-api-key"
LOG_FILE = "weaviate.log"
API_USER = "medrag"
RBAC_ENVIRONMENT = {
    "AUTHORIZATION_RBAC_ENABLED": "true",
    "AUTHORIZATION_RBAC_ROOT_USERS": API_USER,
    "AUTHENTICATION_DB_USERS_ENABLED": "true",
}
"""Roles on, the generated key's user as root, and keys of database users accepted (the root user creates them
through the API). Weaviate 1.39 logs each denial at level error ("authorization denied", with the user, the
permission and the tenant), so denials stay in the log at ``LOG_LEVEL=warning``."""


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("0.0.0.0", port))  # gRPC and the cluster ports listen on all interfaces
        except OSError:
            return False
    return True


def _free_ports(count: int, avoid: set[int]) -> int:
    """First port of ``count`` consecutive free ports (gossip/data and raft/rpc come in pairs)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            first = probe.getsockname()[1]
        block = set(range(first, first + count))
        if first + count < 65535 and not block & avoid and all(_port_is_free(p) for p in block):
            return first
    raise ServerStartError("could not find free ports for Weaviate; free some ports or set MEDRAG_WEAVIATE_PORT")


def _api_key(data_dir: Path) -> str:
    """The key of this data directory: made once, kept with mode 0600 so restarts keep working."""
    path = data_dir / KEY_FILE
    if not path.exists():
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


class EmbeddedServer:
    """A ``weaviate-server`` process owned by this Python process (stopped with SIGTERM at exit)."""

    def __init__(
        self,
        binary: Path,
        data_dir: Path,
        *,
        port: int | None = None,
        hostname: str = "medrag-node",
        api_key: str | None = None,
        startup_timeout: float = 90.0,
        rbac: bool = False,
    ) -> None:
        self.binary = Path(binary)
        self.data_dir = Path(data_dir).resolve()
        self.requested_port = port
        self.hostname = hostname
        self.startup_timeout = startup_timeout
        self.rbac = rbac
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self.api_key = api_key or _api_key(self.data_dir)
        except OSError as error:  # read-only mount, full disk, wrong owner: say which directory and what to do
            raise ServerStartError(
                f"Weaviate data dir {self.data_dir} is not writable: {error.strerror or error}. Make it writable "
                "(mounted read-write, free space, owned by the user medrag runs as) or set MEDRAG_WEAVIATE_DATA_DIR "
                "to a writable directory"
            ) from None
        self.log_path = self.data_dir / LOG_FILE
        self.http_port = 0
        self.grpc_port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._lock: int | None = None
        self.unclean_start = False
        """The last server on this data dir did not stop cleanly (killed, crashed, power loss): its newest id-index and
        vector-index entries may be lost while the objects are kept (see ``Store.unindexed``)."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def _take_lock(self) -> int:
        path = self.data_dir / LOCK_FILE
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            holder = path.read_text() or "{}"
            info = json.loads(holder)
            raise ServerStartError(
                f"data dir {self.data_dir} is in use by Weaviate pid {info.get('pid', '?')} "
                f"({info.get('url', 'unknown url')}). Stop that server (kill {info.get('pid', '<pid>')}) "
                "or set MEDRAG_WEAVIATE_DATA_DIR to another directory"
            ) from None
        self.unclean_start = os.fstat(descriptor).st_size > 0  # a clean stop empties the lock file
        return descriptor

    def _environment(self, gossip: int, raft: int) -> dict[str, str]:
        return {
            **{name: value for name, value in os.environ.items() if not name.startswith("MEDRAG_")},
            "PERSISTENCE_DATA_PATH": str(self.data_dir),
            "CLUSTER_HOSTNAME": self.hostname,
            "CLUSTER_IN_LOCALHOST": "true",
            "CLUSTER_GOSSIP_BIND_PORT": str(gossip),
            "CLUSTER_DATA_BIND_PORT": str(gossip + 1),
            "RAFT_PORT": str(raft),
            "RAFT_INTERNAL_RPC_PORT": str(raft + 1),
            "RAFT_JOIN": f"{self.hostname}:{raft}",
            "RAFT_BOOTSTRAP_EXPECT": "1",
            "GRPC_PORT": str(self.grpc_port),
            "DEFAULT_VECTORIZER_MODULE": "none",
            "AUTOSCHEMA_ENABLED": "false",
            "DISABLE_TELEMETRY": "true",
            # Every server would otherwise open a debug listener on port 6060: the second one on a machine fails
            # to bind it and logs an error, and the listener is nothing medrag's users need.
            "GO_PROFILING_DISABLE": "true",
            "LOG_LEVEL": "warning",
            "QUERY_DEFAULTS_LIMIT": "25",
            "ENABLE_MODULES": "backup-filesystem",
            "BACKUP_FILESYSTEM_PATH": str(self.data_dir / "backups"),
            "AUTHENTICATION_ANONYMOUS_ACCESS_ENABLED": "false",
            "AUTHENTICATION_APIKEY_ENABLED": "true",
            "AUTHENTICATION_APIKEY_ALLOWED_KEYS": self.api_key,
            "AUTHENTICATION_APIKEY_USERS": API_USER,
            **(RBAC_ENVIRONMENT if self.rbac else {}),
        }

    def start(self) -> EmbeddedServer:
        if self._process is not None:
            return self
        if not (self.binary.is_file() and os.access(self.binary, os.X_OK)):
            raise ServerStartError(
                f"weaviate-server binary {self.binary} is missing or not executable; run `make setup`"
            )
        if self.requested_port is not None and not _port_is_free(self.requested_port):
            raise ServerStartError(
                f"port {self.requested_port} (MEDRAG_WEAVIATE_PORT) is already in use by another process; "
                "stop that process, choose another port, or unset MEDRAG_WEAVIATE_PORT to pick a free one"
            )
        self._lock = self._take_lock()
        try:
            self._launch()
            self._wait_until_ready()
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)
        return self

    def _pick_ports(self) -> tuple[int, int]:
        """Set the HTTP and gRPC ports and return the first gossip and raft ports: free ones for a single node (a
        cluster node pins its own, since its peers know them)."""
        self.http_port = self.requested_port or _free_ports(1, set())
        self.grpc_port = _free_ports(1, {self.http_port})
        gossip = _free_ports(2, {self.http_port, self.grpc_port})
        return gossip, _free_ports(2, {self.http_port, self.grpc_port, gossip, gossip + 1})

    def _launch(self) -> None:
        gossip, raft = self._pick_ports()
        with open(self.log_path, "ab") as log:
            log.write(f"\n--- medrag starting weaviate-server on {self.url} ---\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                [str(self.binary), "--host", "127.0.0.1", "--port", str(self.http_port), "--scheme", "http"],
                cwd=self.data_dir,  # a weaviate.conf.json in the working directory would be read: use ours
                env=self._environment(gossip, raft),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(self._lock,),  # the server holds the data-dir lock for as long as it lives
                start_new_session=True,  # Ctrl-C reaches us, and we stop the server cleanly
            )
        os.ftruncate(self._lock, 0)
        os.pwrite(self._lock, json.dumps({"pid": self._process.pid, "url": self.url}).encode(), 0)

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        ready_url = f"{self.url}/v1/.well-known/ready"
        while time.monotonic() < deadline:
            if self.exit_reason() is not None:
                raise ServerStartError(f"Weaviate failed to start: {self.exit_reason()}")
            try:
                with urllib.request.urlopen(ready_url, timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise ServerStartError(
            f"Weaviate was not ready on {self.url} after {self.startup_timeout:.0f} s; see {self.log_path}. "
            f"Last log lines:\n{self.log_tail()}\nRaise MEDRAG_WEAVIATE_STARTUP_TIMEOUT if the machine is slow"
        )

    def log_tail(self, lines: int = 15) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def exit_reason(self, settle: float = 0.0) -> str | None:
        """Why the server is gone (exit code, log path and tail), or None while it runs; ``settle``: seconds to
        wait for a process that is exiting (a killed one closes its sockets before it can be reaped)."""
        if self._process is not None and settle > 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(settle)
        if self._process is None or self._process.poll() is None:
            return None
        return (
            f"weaviate-server (pid {self._process.pid}) exited with code {self._process.returncode}; "
            f"log: {self.log_path}. Last log lines:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, wait, then SIGKILL if it will not go; releases the data-dir lock."""
        atexit.unregister(self.stop)
        process, self._process = self._process, None
        clean = False
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                clean = process.wait(timeout) == 0
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._lock is not None:
            with contextlib.suppress(OSError):
                if clean:
                    os.ftruncate(self._lock, 0)
                os.close(self._lock)
            self._lock = None

    def kill(self) -> None:
        """SIGKILL without a clean shutdown (tests of durability use this)."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
