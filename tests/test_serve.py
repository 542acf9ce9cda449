"""`chatsessions serve` as an operator runs it: embedded Redis, restarts, workers, metrics."""

from __future__ import annotations

import os
import re
import signal
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
from serve_process import TEST_TOKEN, ServeProcess, token_env

pytestmark = pytest.mark.real

HEADERS = {"Authorization": f"Bearer {TEST_TOKEN}", "Content-Type": "application/json"}


def request(url: str, method: str = "GET", body: Any = None) -> tuple[int, Any]:
    data = None if body is None else orjson.dumps(body)
    req = urllib.request.Request(url, data=data, method=method, headers=HEADERS)
    try:
        with urllib.request.urlopen(req, timeout=10) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, orjson.loads(error.read())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent's wait is missing.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def embedded_pid(log: str) -> int:
    found = re.search(r"embedded redis-server pid (\d+)", log)
    assert found, log
    return int(found.group(1))


def assert_stopped_by(log: str, signal_name: str) -> None:
    """One line says which signal stopped the service; the last says it has stopped."""
    lines = [line for line in log.splitlines() if line.strip()]
    said = [n for n, line in enumerate(lines) if f"shutting down ({signal_name})" in line]
    assert len(said) == 1, log
    assert lines[-1].endswith("INFO chatsessions stopped"), log
    assert said[0] < len(lines) - 1


def wait_gone(pid: int, limit: float = 30.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_embedded_redis_keeps_data_across_restarts(tmp_path: Path) -> None:
    first = ServeProcess(tmp_path, env=token_env()).start()
    try:
        status, _ = request(
            first.url + "/api/sessions/dm%3A1/messages",
            "POST",
            {"role": "user", "content": "remember me", "channel": "web", "id": "m1"},
        )
        assert status == 201
        redis_pid = embedded_pid(first.log())
        # Redis 7 keeps its append-only files in a folder, 6.2 in one file.
        data = tmp_path / "data"
        assert (data / "appendonlydir").is_dir() or (data / "appendonly.aof").is_file()
        assert "data and log in " + str(tmp_path / "data") in first.log()
    finally:
        assert first.stop() == 0
    assert wait_gone(redis_pid), "SIGTERM left the embedded redis-server running"
    assert_stopped_by(first.log(), "SIGTERM")
    second = ServeProcess(tmp_path / "again", env=token_env(), port=first.port)
    second.env["CHATSESSIONS_DATA_DIR"] = str(tmp_path / "data")
    second.start()
    try:
        status, body = request(second.url + "/api/sessions")
        assert status == 200
        assert [(s["id"], s["title"]) for s in body["sessions"]] == [("dm:1", "remember me")]
    finally:
        assert second.stop(signal.SIGINT) == 0
    assert_stopped_by(second.log(), "SIGINT")


def test_second_serve_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    first = ServeProcess(tmp_path, env=token_env()).start()
    try:
        second = ServeProcess(tmp_path, env=token_env()).start(wait=False)
        assert second.wait_exit() != 0
        assert "is in use by another chatsessions serve" in second.log()
        assert request(first.url + "/readyz")[0] == 200
    finally:
        first.stop()


def listed_in_metrics(url: str, expected: int) -> int:
    """GET /api/sessions answers counted by /metrics once it shows ``expected`` (or after
    a few seconds)."""
    counted = 0
    for _ in range(50):
        with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
            metrics = response.read().decode()
        found = re.search(
            r'chatsessions_requests_total\{method="GET",route="/api/sessions",status="200"\} (\S+)',
            metrics,
        )
        counted = int(float(found.group(1))) if found else 0
        if counted >= expected:
            break
        time.sleep(0.1)
    return counted


def test_two_workers_share_one_port_and_stop_together(tmp_path: Path) -> None:
    service = ServeProcess(tmp_path, env=token_env(), args=("--workers", "2")).start()
    try:
        pids = service.worker_pids(2)
        assert len(pids) == 2, "requests never reached a second worker"
        assert service.pid not in pids
        for n in range(10):
            request(service.url + f"/api/sessions?limit={n + 1}")
        # Each worker leaves its counts for the others twice a second.
        assert listed_in_metrics(service.url, 10) == 10
        redis_pid = embedded_pid(service.log())
    finally:
        assert service.stop() == 0
    assert all(wait_gone(pid) for pid in [*pids, redis_pid])
    # The parent speaks for the service; its workers stop without a word.
    assert_stopped_by(service.log(), "SIGTERM")


def test_a_dying_worker_stops_the_service_loudly(tmp_path: Path) -> None:
    service = ServeProcess(tmp_path, env=token_env(), args=("--workers", "2")).start()
    try:
        pids = service.worker_pids(2)
        assert len(pids) == 2
        victim = pids.pop()
        os.kill(victim, signal.SIGKILL)
        assert service.wait_exit() == 1
        assert f"worker pid {victim} exited with code -9" in service.log()
        assert all(wait_gone(pid) for pid in pids)
    finally:
        service.stop()


def test_access_log_has_route_templates_and_no_secrets(tmp_path: Path) -> None:
    env = {**token_env(), "CHATSESSIONS_LOG_FORMAT": "json"}
    service = ServeProcess(tmp_path, env=env).start()
    try:
        request(
            service.url + "/api/sessions/secret%20id/messages",
            "POST",
            {"role": "user", "content": "body text", "channel": "web"},
        )
    finally:
        service.stop()
    lines = [orjson.loads(line) for line in service.log().splitlines() if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "chatsessions.access"]
    assert any(
        (a["method"], a["route"], a["status"])
        == ("POST", "/api/sessions/{session_id}/messages", 201)
        for a in access
    )
    text = service.log()
    for secret in (TEST_TOKEN, "secret id", "secret%20id", "body text"):
        assert secret not in text
