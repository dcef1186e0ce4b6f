"""Run a Weaviate cluster of several nodes on loopback: what ``medrag server run --nodes 3`` and the cluster tests use.

Each node is an :class:`~medrag.store.server.EmbeddedServer` with its own data directory and hostname (``node1``,
``node2``, ...) and ports pinned for its life (its peers find it by them): HTTP, gRPC, gossip and data
(``CLUSTER_GOSSIP_BIND_PORT``, ``CLUSTER_DATA_BIND_PORT``), Raft and its RPC (``RAFT_PORT``,
``RAFT_INTERNAL_RPC_PORT``). Every node lists every node in ``RAFT_JOIN`` with ``RAFT_BOOTSTRAP_EXPECT`` = the
node count, so the nodes elect a leader together; gossip joins through the first node (``CLUSTER_JOIN``). All
nodes share the API key. Weaviate refuses filesystem backups on more than one node: a cluster's backups go to an
S3-compatible store, GCS or Azure (``server_env``, docs/cluster.md).

The ports are kept in ``cluster.json`` in the cluster folder: a restarted node (or cluster) comes back on the
same ones, since Raft and its peers know it by them.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import logging
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from medrag.config import Config
from medrag.store.errors import ServerStartError
from medrag.store.server import EmbeddedServer, _api_key, _free_ports

log = logging.getLogger(__name__)

PORTS_FILE = "cluster.json"


def cluster_dir(config: Config) -> Path:
    """Where ``medrag server run --nodes N`` keeps its nodes: beside the single node's data, never inside it."""
    data = config.weaviate_data_dir
    return data.with_name(f"{data.name}-cluster")


@dataclasses.dataclass(frozen=True)
class NodePorts:
    """The ports of one node; data = gossip + 1 and Raft RPC = Raft + 1 (Weaviate's local-cluster convention)."""

    http: int
    grpc: int
    gossip: int
    raft: int

    def all(self) -> set[int]:
        return {self.http, self.grpc, self.gossip, self.gossip + 1, self.raft, self.raft + 1}


def allocate_ports(count: int) -> list[NodePorts]:
    """Free ports for ``count`` nodes, no two nodes sharing one."""
    taken: set[int] = set()
    nodes = []
    for _ in range(count):
        http = _free_ports(1, taken)
        grpc = _free_ports(1, taken | {http})
        gossip = _free_ports(2, taken | {http, grpc})
        raft = _free_ports(2, taken | {http, grpc, gossip, gossip + 1})
        ports = NodePorts(http, grpc, gossip, raft)
        taken |= ports.all()
        nodes.append(ports)
    return nodes


class ClusterNode(EmbeddedServer):
    """One node of a :class:`LocalCluster`: an embedded server whose ports are fixed and whose environment joins it
    to its peers."""

    def __init__(self, binary: Path, data_dir: Path, *, name: str, ports: NodePorts, cluster_env: Mapping[str, str],
                 api_key: str, startup_timeout: float) -> None:
        # No requested port: the free-port check binds without SO_REUSEADDR, so it would refuse a port that a
        # killed node left in TIME_WAIT, which weaviate-server itself binds again without trouble.
        super().__init__(binary, data_dir, hostname=name, api_key=api_key, startup_timeout=startup_timeout)
        self.name = name
        self.ports = ports
        self.cluster_env = dict(cluster_env)

    def _pick_ports(self) -> tuple[int, int]:
        self.http_port, self.grpc_port = self.ports.http, self.ports.grpc
        return self.ports.gossip, self.ports.raft

    def _environment(self, gossip: int, raft: int) -> dict[str, str]:
        return {**super()._environment(gossip, raft), **self.cluster_env}

    def restart(self) -> ClusterNode:
        """Start again on the same ports and data after a stop or a kill."""
        self.stop()
        self.start()
        return self


class LocalCluster:
    """``size`` Weaviate nodes on 127.0.0.1 forming one Raft cluster; a context manager that stops them all.

    ``server_env`` adds server settings to every node (e.g. ``ASYNC_REPLICATION_FREQUENCY=5s`` so that a test sees
    a restarted node catch up within seconds rather than the default 30 s rounds).
    """

    def __init__(self, binary: Path, root: Path, *, size: int = 3, startup_timeout: float = 120.0,
                 server_env: Mapping[str, str] | None = None) -> None:
        if size < 1:
            raise ServerStartError(f"a cluster needs at least one node, not {size}; pass --nodes 1 or more")
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.size = size
        self.startup_timeout = startup_timeout
        self.api_key = _api_key(self.root)
        self.server_env = dict(server_env or {})
        self.fresh = not (self.root / PORTS_FILE).exists()
        """True when this folder has never held a cluster: a failed first formation may then start over on new ports."""
        self.nodes = self._nodes(binary, self._ports())

    def _nodes(self, binary: Path, ports: list[NodePorts]) -> list[ClusterNode]:
        names = [f"node{index + 1}" for index in range(self.size)]
        common = {
            "CLUSTER_ADVERTISE_ADDR": "127.0.0.1",
            "CLUSTER_BIND_ADDR": "127.0.0.1",
            "CLUSTER_JOIN": f"127.0.0.1:{ports[0].gossip}",
            "RAFT_JOIN": ",".join(f"{name}:{port.raft}" for name, port in zip(names, ports, strict=True)),
            "RAFT_BOOTSTRAP_EXPECT": str(self.size),
            **self.server_env,
        }
        return [
            ClusterNode(binary, self.root / name, name=name, ports=port, cluster_env=common, api_key=self.api_key,
                        startup_timeout=self.startup_timeout)
            for name, port in zip(names, ports, strict=True)
        ]

    def _ports(self) -> list[NodePorts]:
        """The ports this cluster folder used before, or new free ones written down for the next start."""
        path = self.root / PORTS_FILE
        if path.exists():
            saved = [NodePorts(**entry) for entry in json.loads(path.read_text())["nodes"]]
            if len(saved) != self.size:
                raise ServerStartError(
                    f"{self.root} holds a cluster of {len(saved)} nodes, not {self.size}; start it with "
                    f"--nodes {len(saved)} or use another cluster folder"
                )
            return saved
        ports = allocate_ports(self.size)
        path.write_text(json.dumps({"nodes": [dataclasses.asdict(port) for port in ports]}, indent=2) + "\n")
        return ports

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> LocalCluster:
        """Start every node and wait until they form one cluster; try once more if they do not.

        On a loaded machine a node now and then never joins (its peers keep failing to reach its Raft port). A
        second try mends that: a folder that has never held a cluster starts over on new ports, so a port another
        process took in between is not reused; an existing cluster restarts on its own ports, which its Raft log
        knows. The error after the second try carries each node's last log lines.
        """
        try:
            self._start_and_form()
        except ServerStartError as first:
            log.warning("the %d-node cluster did not form (%s); starting it once more", self.size,
                        str(first).splitlines()[0])
            if self.fresh:
                self._start_over()
            try:
                self._start_and_form()
            except ServerStartError as second:
                raise ServerStartError(f"{second}\n{self.log_tails()}") from first
        self.fresh = False
        return self

    def _start_and_form(self) -> None:
        """Start every node at once (a node waits for the others before Raft can elect), then wait for the cluster;
        stop every node if either fails."""
        with concurrent.futures.ThreadPoolExecutor(self.size) as pool:
            futures = [pool.submit(node.start) for node in self.nodes]
            errors = [future.exception() for future in futures if future.exception() is not None]
        try:
            if errors:
                raise ServerStartError(f"{len(errors)} of {self.size} cluster nodes did not start: {errors[0]}")
            self.wait_until_formed()
        except BaseException:
            self.stop()
            raise

    def _start_over(self) -> None:
        """Forget a cluster that never formed: its node folders (nothing was stored in them) and its ports."""
        binary = self.nodes[0].binary
        for node in self.nodes:
            shutil.rmtree(node.data_dir, ignore_errors=True)
        (self.root / PORTS_FILE).unlink(missing_ok=True)
        self.nodes = self._nodes(binary, self._ports())

    def log_tails(self, lines: int = 8) -> str:
        """The last log lines of every node, to read why a cluster did not form."""
        return "\n".join(f"--- {node.name} ({node.log_path}):\n{node.log_tail(lines)}" for node in self.nodes)

    def request(self, node: int, path: str) -> Any:
        """GET ``path`` of the REST API of one node (index in :attr:`nodes`), with the cluster's key."""
        request = urllib.request.Request(f"{self.nodes[node].url}{path}",
                                         headers={"Authorization": f"Bearer {self.api_key}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    def status(self, node: int = 0) -> dict[str, Any]:
        """What ``node`` sees: each node's health (``/v1/nodes``) and the Raft leader (``/v1/cluster/statistics``)."""
        nodes = self.request(node, "/v1/nodes")["nodes"]
        statistics = self.request(node, "/v1/cluster/statistics")
        leaders = {str(entry.get("leaderId") or "") for entry in statistics.get("statistics", [])}
        return {"health": {entry["name"]: entry["status"] for entry in nodes},
                "leader": next(iter(leaders)) if len(leaders) == 1 else "",
                "synchronized": bool(statistics.get("synchronized"))}

    def wait_until_formed(self, timeout: float | None = None) -> dict[str, Any]:
        """Until every live node reports every node HEALTHY and all agree on one Raft leader; return that status."""
        deadline = time.monotonic() + (timeout or self.startup_timeout)
        last: dict[str, Any] | str = "no answer yet"
        while time.monotonic() < deadline:
            try:
                seen = [self.status(index) for index in range(self.size)]
            except (urllib.error.URLError, OSError, KeyError, ValueError) as error:
                last = str(error)
            else:
                last = seen[0]
                healthy = all(set(view["health"].values()) == {"HEALTHY"} and len(view["health"]) == self.size
                              for view in seen)
                leaders = {view["leader"] for view in seen}
                if healthy and len(leaders) == 1 and "" not in leaders and all(v["synchronized"] for v in seen):
                    return seen[0]
            time.sleep(0.5)
        raise ServerStartError(
            f"the {self.size}-node cluster in {self.root} did not form (all nodes HEALTHY, one Raft leader) within "
            f"{timeout or self.startup_timeout:.0f} s; last status: {last}. Read the nodes' weaviate.log files; if "
            f"a port in {self.root / PORTS_FILE} is now taken, delete that file to pick new ones"
        )

    def config(self, config: Config, node: int = 0) -> Config:
        """``config`` pointed at ``node`` of this cluster, with replication over every node (what a Store opens)."""
        target = self.nodes[node]
        return config.replace(weaviate={"url": target.url, "api_key": self.api_key, "grpc_host": "127.0.0.1",
                                        "grpc_port": target.grpc_port, "replication_factor": self.size})

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
