"""A real local Redis Cluster made of redis-server processes, torn down by pid."""

from __future__ import annotations

import random
import shutil
import subprocess
import time
from pathlib import Path

import redis

from redis_process import RedisProcess, port_is_free

START_TIMEOUT = 60.0


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too, as Redis needs."""
    chooser = random.Random()
    while True:
        port = chooser.randrange(20000, 45000)
        if all(port_is_free(p) for p in (port, port + 10000)):
            return port


class ClusterProcess:
    """``masters`` masters, each with ``replicas`` replicas, on free 127.0.0.1 ports."""

    def __init__(self, directory: Path, masters: int = 3, replicas: int = 0) -> None:
        self.directory = directory
        self.masters = masters
        self.replicas = replicas
        self.nodes: list[RedisProcess] = []

    @property
    def url(self) -> str:
        return f"redis+cluster://127.0.0.1:{self.nodes[0].port}"

    def start(self) -> ClusterProcess:
        count = self.masters * (1 + self.replicas)
        for _ in range(count):
            port = cluster_port()
            node = RedisProcess(
                self.directory / str(port),
                port=port,
                appendonly=True,
                extra_args=(
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    f"nodes-{port}.conf",
                    "--cluster-node-timeout",
                    "1000",
                    "--cluster-replica-validity-factor",
                    "0",
                ),
            )
            self.nodes.append(node.start())
        redis_cli = shutil.which("redis-cli")
        assert redis_cli, "redis-cli builds the cluster (Debian package redis-tools)"
        subprocess.run(
            [
                redis_cli,
                "--cluster",
                "create",
                *(f"127.0.0.1:{node.port}" for node in self.nodes),
                "--cluster-replicas",
                str(self.replicas),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.wait_ok()
        return self

    def wait_ok(self, nodes: list[RedisProcess] | None = None) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        for node in nodes or self.running():
            client = redis.Redis(port=node.port)
            try:
                while True:
                    info = client.cluster("INFO")
                    state = info.get("cluster_state") if isinstance(info, dict) else None
                    if state == "ok" and int(info.get("cluster_slots_ok", 0)) == 16384:
                        break
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"cluster not ok on {node.port}: {info}")
                    time.sleep(0.1)
            finally:
                client.close()

    def running(self) -> list[RedisProcess]:
        return [node for node in self.nodes if node.process is not None]

    def master_of_slot(self, slot: int) -> RedisProcess:
        for node in self.running():
            client = redis.Redis(port=node.port)
            try:
                slots = client.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
                for start, end, master, *_ in slots:
                    if start <= slot <= end:
                        port = int(master[1])
                        return next(n for n in self.nodes if n.port == port)
            except redis.ConnectionError:
                continue
            finally:
                client.close()
        raise RuntimeError(f"no master serves slot {slot}")

    def masters_now(self) -> list[RedisProcess]:
        found = []
        for node in self.running():
            client = redis.Redis(port=node.port)
            try:
                if client.info("replication")["role"] == "master":
                    found.append(node)
            finally:
                client.close()
        return found

    def flush(self) -> None:
        for node in self.masters_now():
            client = redis.Redis(port=node.port)
            try:
                client.flushall()
            finally:
                client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
