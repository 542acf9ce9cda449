"""/metrics counts requests by route template, and strangers cannot grow its labels."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from service.metrics import Metrics

from conftest import Api


async def metrics_text(api: Api) -> str:
    async with api.client.get("/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return await response.text()


async def test_requests_are_counted_by_template(api: Api) -> None:
    for n in range(3):
        await api.ingest(f"id with secret {n}")
    await api.call("GET", "/api/sessions/nope")
    text = await metrics_text(api)
    created = re.search(
        r'chatsessions_requests_total\{method="POST",route="/api/sessions/\{session_id\}/messages",status="201"\} (\S+)',
        text,
    )
    assert created and float(created.group(1)) == 3.0
    assert 'route="/api/sessions/{session_id}",status="404"' in text
    assert "secret" not in text
    for counter in ("messages_ingested", "sessions_created"):
        found = re.search(rf"^chatsessions_{counter}_total (\S+)$", text, re.MULTILINE)
        assert found and found.group(1) == "3.0", counter
    assert "chatsessions_request_seconds_bucket" in text


async def test_unusual_methods_share_one_label(api: Api) -> None:
    # The HTTP parser lets through only methods it knows; these are some of those.
    strangers = ["PROPFIND", "LINK", "UNLINK", "PURGE", "MKCOL", "REPORT", "LOCK", "UNLOCK"]
    for method in strangers:
        async with api.client.request(method, "/api/sessions") as response:
            assert response.status in (401, 405)
    text = await metrics_text(api)
    assert 'method="OTHER"' in text
    assert not any(method in text for method in strangers)


def sample(text: str, line_start: str) -> float:
    found = re.search(rf"^{re.escape(line_start)} (\S+)$", text, re.MULTILINE)
    assert found, line_start
    return float(found.group(1))


def test_latency_lands_in_cumulative_buckets() -> None:
    metrics = Metrics()
    for nanoseconds in (400_000, 500_000, 700_000, 20_000_000, 3_000_000_000):
        metrics.observe("GET", "/api/sessions", 200, nanoseconds)
    text = metrics.render().decode()
    bucket = 'chatsessions_request_seconds_bucket{le="%s",route="/api/sessions"}'
    assert sample(text, bucket % "0.0005") == 2.0  # a bound holds what equals it
    assert sample(text, bucket % "0.001") == 3.0
    assert sample(text, bucket % "0.01") == 3.0
    assert sample(text, bucket % "0.025") == 4.0
    assert sample(text, bucket % "2.5") == 4.0
    assert sample(text, bucket % "+Inf") == 5.0
    assert sample(text, 'chatsessions_request_seconds_count{route="/api/sessions"}') == 5.0
    total = sample(text, 'chatsessions_request_seconds_sum{route="/api/sessions"}')
    assert abs(total - 3.0216) < 1e-9


def test_workers_sharing_a_folder_each_count_once(tmp_path: Path) -> None:
    first, second = Metrics(str(tmp_path), "first"), Metrics(str(tmp_path), "second")
    for _ in range(3):
        first.observe("GET", "/api/sessions", 200, 1_000_000)
    first.count("messages_ingested", 4)
    second.observe("GET", "/api/sessions", 200, 1_000_000)
    second.count("messages_ingested")
    requests = 'chatsessions_requests_total{method="GET",route="/api/sessions",status="200"}'
    # Not flushed yet: each sees only its own.
    assert sample(second.render().decode(), requests) == 1.0
    first.flush()
    second.flush()
    for metrics in (first, second):
        text = metrics.render().decode()
        assert sample(text, requests) == 4.0
        assert sample(text, "chatsessions_messages_ingested_total") == 5.0
    # A worker that is gone still counts; its last counts stay in the sum.
    del first
    assert sample(second.render().decode(), requests) == 4.0


def test_an_unwritable_folder_is_logged_once_and_counting_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "gone"
    folder.mkdir()
    metrics = Metrics(str(folder), "worker")
    folder.rmdir()
    metrics.observe("GET", "/api/sessions", 200, 1_000_000)
    with caplog.at_level(logging.WARNING, logger="chatsessions.metrics"):
        metrics.flush()
        metrics.flush()
    assert [r.getMessage() for r in caplog.records].count(
        f"metrics counts not written to {folder}: "
        f"[Errno 2] No such file or directory: '{folder / 'worker.metrics.tmp'}'"
    ) == 1
    requests = 'chatsessions_requests_total{method="GET",route="/api/sessions",status="200"}'
    assert sample(metrics.render().decode(), requests) == 1.0
    folder.mkdir()
    metrics.flush()
    assert (folder / "worker.metrics.json").exists()
