"""`chatsessions serve` as a real subprocess, configured through its environment."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson

from redis_process import free_port

START_TIMEOUT = 30.0
TEST_TOKEN = "cs_test_token_for_subprocess_servers_0123456789"


def generated_tokens(output: str) -> list[str]:
    """The tokens a serve's output shows (a generated one is printed on a line of its own)."""
    return re.findall(r"^\s+(cs_[A-Za-z0-9_-]{20,})\s*$", output, re.MULTILINE)


def serve_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any CHATSESSIONS_ setting, then ``env``."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHATSESSIONS_")},
        **(env or {}),
    }


def run_serve_to_exit(
    directory: Path, env: dict[str, str], *args: str, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """``chatsessions serve`` that is expected to exit by itself (a start-up failure), on
    a free port unless ``env`` names one: never the machine's 8000, which may be taken."""
    directory.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "service", "serve", *args],
        cwd=directory,
        env=serve_env({"CHATSESSIONS_PORT": str(free_port()), **env}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def token_env(token: str = TEST_TOKEN, namespace: str = "default") -> dict[str, str]:
    entry = {
        "name": "test",
        "sha256": hashlib.sha256(token.encode()).hexdigest(),
        "scopes": ["read", "write", "delete"],
        "namespace": namespace,
    }
    return {"CHATSESSIONS_TOKENS": orjson.dumps([entry]).decode()}


class ServeProcess:
    """One ``chatsessions serve`` with its output in ``directory/serve.log``."""

    def __init__(
        self,
        directory: Path,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        port: int | None = None,
    ) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.args = args
        self.env = serve_env({"CHATSESSIONS_PORT": str(self.port), **(env or {})})
        self.log_path = directory / "serve.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, wait: bool = True) -> ServeProcess:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "service", "serve", *self.args],
                cwd=self.directory,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"serve did not answer in time:\n{self.log()}")

    def worker_pids(self, workers: int) -> set[int]:
        """The pids that answer /healthz, each on a fresh connection, asked until
        ``workers`` of them have answered (or START_TIMEOUT passes): a worker that is
        still starting takes none of the port's connections yet."""
        pids: set[int] = set()
        deadline = time.monotonic() + START_TIMEOUT
        while len(pids) < workers and time.monotonic() < deadline:
            with urllib.request.urlopen(self.url + "/healthz", timeout=10) as response:
                pids.add(orjson.loads(response.read())["pid"])
            time.sleep(0.01)
        return pids

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode
