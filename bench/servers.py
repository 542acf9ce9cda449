"""Processes the harness starts and stops by pid: redis-server, the service, the baseline."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import redis

from service.embedded import find_redis_server

from .baseline import LIST_PATH

TOKEN = "cs_bench_token_0123456789_abcdefghijklmnop"
START_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer in time")


def redis_server_argv(port: int, directory: Path) -> list[str]:
    """A redis-server on ``port`` of loopback, without persistence, its files in ``directory``."""
    return [
        find_redis_server(), "--port", str(port), "--bind", "127.0.0.1",
        "--save", "", "--appendonly", "no", "--dir", str(directory),
    ]  # fmt: skip


def wait_for_redis(port: int, timeout: float) -> None:
    """Return once the redis-server on ``port`` answers PING; raise after ``timeout``."""
    client = redis.Redis(port=port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server on port {port} did not start")


class Managed:
    """A subprocess stopped by its pid when the harness ends."""

    process: subprocess.Popen[bytes] | None = None

    def cpu_seconds(self) -> float:
        """CPU time the process has used so far, user and system (from /proc)."""
        assert self.process is not None
        with open(f"/proc/{self.process.pid}/stat") as stat:
            # The fields after the command name, which is in parentheses.
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class RedisServer(Managed):
    """A throwaway redis-server: no persistence, its own port."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, *extra: str) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [*redis_server_argv(self.port, self.directory),
             "--logfile", str(self.directory / "redis.log"), *extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_redis(self.port, START_TIMEOUT)
        return self

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port)


class ServiceServer(Managed):
    """``chatsessions serve`` against the bench's Redis, as an operator would run it."""

    def __init__(self, redis_url: str, directory: Path, workers: int = 1) -> None:
        self.redis_url = redis_url
        self.directory = directory
        self.workers = workers
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """The settings ``serve`` gets: this Redis and port, the bench's token."""
        entry = {
            "name": "bench",
            "sha256": hashlib.sha256(TOKEN.encode()).hexdigest(),
            "scopes": ["read", "write", "delete"],
        }
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith("CHATSESSIONS_")},
            "CHATSESSIONS_REDIS_URL": self.redis_url,
            "CHATSESSIONS_PORT": str(self.port),
            "CHATSESSIONS_WORKERS": str(self.workers),
            "CHATSESSIONS_TOKENS": orjson.dumps([entry]).decode(),
        }

    def start(self) -> ServiceServer:
        env = self.environment()
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "serve.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service", "serve"],
                cwd=self.directory, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        wait_http(self.url + "/healthz", self.process)
        return self


class BaselineServer(Managed):
    def __init__(self, body: bytes, directory: Path) -> None:
        self.body_path = directory / "baseline-body.json"
        directory.mkdir(parents=True, exist_ok=True)
        self.body_path.write_bytes(body)
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> BaselineServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.baseline", str(self.port), str(self.body_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_http(self.url + LIST_PATH, self.process)
        return self
