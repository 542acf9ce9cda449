"""Retention (SPEC §7): the sweep deletes sessions inactive for longer than
retention_days, pinned ones never; one sweeper per namespace at a time (the lease); the
background task in each worker; ``chatsessions sweep``. On fakeredis and a real
redis-server."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from fakeredis.aioredis import FakeRedis
from fault_proxy import LOADING, FaultProxy, both, named, touching
from redis.asyncio import Redis
from terminal import run_shown

from service.app import create_app
from service.appkeys import SWEEP_INTERVAL
from service.cli import main
from service.metrics import Metrics
from service.models import MessageIn, format_time, now_ms
from service.settings import Settings
from service.store import (
    InvariantChecker,
    RedisClient,
    SessionChange,
    SessionNotFound,
    SessionStore,
)
from service.store.events import FIRST
from service.store.keys import keys_of
from service.store.scripts import script_text
from service.store.sweep_lease import SweepLease, sweep_lease_key
from service.sweeper import DAY_MS, Sweeper, configured_namespaces, swept_namespaces
from service.tasks import stopped

from conftest import ACTIVE_WINDOW_MS, Api, quote, snapshot
from redis_process import RedisProcess

# Bounded waits: this many short sleeps at most.
TICKS = 1000
TICK = 0.02
# A background sweep's interval in tests: short, so that many sweeps happen in a test.
FAST = 0.02
RETENTION = 30
GONE = ["old", "old-2", "archived-old"]
KEPT = ["recent", "edge", "pinned-old", "archived-pinned-old"]


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(TICKS):
        if await check():
            return
        await asyncio.sleep(TICK)
    raise AssertionError(f"never happened: {what}")


def ago(days: float) -> str:
    return format_time(now_ms() - int(days * DAY_MS))


async def seed(api: Api) -> None:
    """Sessions of namespace default, some inactive for longer than RETENTION days (GONE
    once swept) and some kept (KEPT), and an old one of namespace other."""
    await api.ingest("old", id="m", timestamp=ago(40), channel="telegram", user="alice")
    await api.ingest("old", id="m2", timestamp=ago(39), channel="telegram")
    await api.ingest("old-2", id="m", timestamp=ago(31))
    await api.ingest("recent", id="m", timestamp=ago(1), user="alice")
    await api.ingest("edge", id="m", timestamp=ago(RETENTION - 0.5))
    for session_id in ("pinned-old", "archived-old", "archived-pinned-old"):
        await api.ingest(session_id, id="m", timestamp=ago(90), channel="slack")
    await patch(api, "old", {"tags": ["billing"]})
    await patch(api, "pinned-old", {"pinned": True, "tags": ["billing"]})
    await patch(api, "archived-old", {"archived": True, "tags": ["billing"]})
    await patch(api, "archived-pinned-old", {"archived": True, "pinned": True})
    status, _ = await api.call("POST", "/api/sessions/old/read", json={"reader": "ops"})
    assert status == 200
    other = {"role": "user", "content": "x", "channel": "web", "timestamp": ago(90)}
    status, _ = await api.call("POST", "/api/sessions/o-1/messages", json=other, token="other")
    assert status == 201


async def patch(api: Api, session_id: str, body: dict[str, Any]) -> None:
    status, answer = await api.call("PATCH", f"/api/sessions/{quote(session_id)}", json=body)
    assert status == 200, answer


async def listed(api: Api, token: str = "admin") -> list[str]:
    """Every session of the token's namespace, archived or not, page after page."""
    found: list[str] = []
    path: str | None = "/api/sessions?archived=any&limit=100"
    while path is not None:
        status, page = await api.call("GET", path, token=token)
        assert status == 200
        found += [s["id"] for s in page["sessions"]]
        cursor = page.get("next_cursor")
        path = None if cursor is None else f"/api/sessions?archived=any&limit=100&cursor={cursor}"
    return sorted(found)


async def consistent(client: RedisClient, *namespaces: str) -> None:
    checker = InvariantChecker(client)
    for namespace in namespaces:
        report = await checker.check(namespace)
        assert report.ok, report.problems


@pytest.fixture
async def store(redis_client: RedisClient) -> AsyncIterator[SessionStore]:
    opened = SessionStore(redis_client, active_window_ms=ACTIVE_WINDOW_MS)
    yield opened
    await opened.aclose()


@pytest.fixture
async def lease(redis_client: RedisClient) -> AsyncIterator[SweepLease]:
    opened = SweepLease(redis_client, 5.0)
    yield opened
    await opened.aclose()


def sweeper(store: SessionStore, lease: SweepLease, metrics: Metrics | None = None) -> Sweeper:
    return Sweeper(store, lease, metrics or Metrics(), [("default", RETENTION)], interval=FAST)


# --- what a sweep deletes ----------------------------------------------------------------


async def test_old_sessions_go_recent_and_pinned_stay(
    api: Api, store: SessionStore, lease: SweepLease, redis_client: RedisClient
) -> None:
    await seed(api)
    before = (await store.replay("default", FIRST, limit=1000, now=now_ms())).events
    _, counts = await api.call("GET", "/api/sessions/counts")
    assert (counts["total"], counts["archived"], counts["pinned"]) == (5, 2, 1)
    metrics = Metrics()
    assert await sweeper(store, lease, metrics).sweep("default", RETENTION) == len(GONE)
    assert metrics.counts.counters["sessions_swept"] == len(GONE)
    assert await listed(api) == sorted(KEPT)
    # Counts, filters and the checker agree with what is left.
    _, counts = await api.call("GET", "/api/sessions/counts")
    assert (counts["total"], counts["archived"], counts["pinned"]) == (3, 1, 1)
    assert counts["tags"] == {"billing": 1}
    assert set(counts["channels"]) == {"web", "slack"}
    _, alice = await api.call("GET", "/api/sessions?user=alice&archived=any")
    assert [s["id"] for s in alice["sessions"]] == ["recent"]
    _, billing = await api.call("GET", "/api/sessions?tag=billing&archived=any")
    assert [s["id"] for s in billing["sessions"]] == ["pinned-old"]
    await consistent(redis_client, "default", "other")
    keys = keys_of("default")
    for session_id in GONE:
        assert not await redis_client.exists(
            keys.session(session_id), keys.messages(session_id), keys.seen(session_id)
        )
        status, _ = await api.call("GET", f"/api/sessions/{session_id}")
        assert status == 404
    # Each deletion has its event, as DELETE's.
    after = (await store.replay("default", FIRST, limit=1000, now=now_ms())).events
    added = after[len(before) :]
    assert [e.type for e in added] == ["session.deleted"] * len(GONE)
    assert sorted(e.session_id for e in added) == sorted(GONE)
    # Another namespace keeps its sessions, however old; the next sweep finds nothing.
    assert await listed(api, "other") == ["o-1"]
    assert await sweeper(store, lease, metrics).sweep("default", RETENTION) == 0
    assert metrics.counts.counters["sessions_swept"] == len(GONE)


async def test_a_dry_run_changes_nothing_and_names_what_would_go(
    api: Api, store: SessionStore, redis_client: RedisClient
) -> None:
    await seed(api)
    seen = await snapshot(redis_client)
    before = now_ms() - RETENTION * DAY_MS
    steps: list[list[str]] = []
    named = await store.sweep("default", before=before, dry_run=True, progress=steps.append)
    assert sorted(named) == sorted(GONE)
    assert sorted(i for step in steps for i in step) == sorted(GONE)
    assert await snapshot(redis_client) == seen
    assert sorted(await store.sweep("default", before=before)) == sorted(GONE)


async def test_many_old_sessions_go_in_steps_around_pinned_ones(
    api: Api, store: SessionStore, lease: SweepLease, redis_client: RedisClient
) -> None:
    """More old sessions than a step takes, every third pinned: the pinned ones a step
    passes over do not hide the old ones after them."""
    messages = [
        {
            "session_id": f"s{n:03d}",
            "id": "m",
            "role": "user",
            "content": "x",
            "channel": "web",
            "timestamp": ago(60 - n / 100),
        }
        for n in range(330)
    ]
    status, _ = await api.call("POST", "/api/messages", json={"messages": messages})
    assert status == 200
    pinned = [m["session_id"] for m in messages[::3]]
    status, _ = await api.call("POST", "/api/sessions/bulk", json={"action": "pin", "ids": pinned})
    assert status == 200
    seen = await snapshot(redis_client)
    before = now_ms() - RETENTION * DAY_MS
    steps: list[list[str]] = []
    would = await store.sweep("default", before=before, dry_run=True, progress=steps.append)
    assert len(would) == 220 and len(steps) > 2
    assert await snapshot(redis_client) == seen
    assert await sweeper(store, lease).sweep("default", RETENTION) == 220
    assert await listed(api) == sorted(pinned)
    await consistent(redis_client, "default")


# --- the lease -----------------------------------------------------------------------------


async def test_the_lease_is_one_owners_at_a_time(
    lease: SweepLease, redis_client: RedisClient
) -> None:
    assert sweep_lease_key("default") == "cs:{default}:sweep-lease"
    assert await lease.acquire("default", "w1", 10_000)
    assert 0 < await redis_client.pttl(sweep_lease_key("default")) <= 10_000
    # Taken: no other owner gets it, renews it or gives it back; its holder asks again.
    assert not await lease.acquire("default", "w2", 10_000)
    assert await lease.acquire("default", "w1", 10_000)
    assert not await lease.renew("default", "w2", 10_000)
    assert not await lease.release("default", "w2")
    assert await lease.holder("default") == "w1"
    # Each namespace has its own.
    assert await lease.acquire("other", "w2", 10_000)
    assert await lease.renew("default", "w1", 60_000)
    assert 10_000 < await redis_client.pttl(sweep_lease_key("default")) <= 60_000
    assert await lease.release("default", "w1")
    assert await lease.holder("default") is None
    assert not await lease.renew("default", "w1", 10_000)
    assert await lease.acquire("default", "w2", 10_000)


async def test_a_lease_not_renewed_runs_out(lease: SweepLease) -> None:
    assert await lease.acquire("default", "crashed", 50)

    async def taken_over() -> bool:
        return await lease.acquire("default", "next", 10_000)

    await until(taken_over, "the lease ran out")
    assert await lease.holder("default") == "next"


async def test_a_held_lease_keeps_other_sweepers_out(
    api: Api,
    store: SessionStore,
    lease: SweepLease,
    redis_client: RedisClient,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="chatsessions.sweeper")
    await seed(api)
    assert await lease.acquire("default", "someone else", 60_000)
    seen = await snapshot(redis_client)
    running = sweeper(store, lease)
    task = asyncio.create_task(running.run())
    try:

        async def passed_three_times() -> bool:
            return skips(caplog, running.owner) >= 3

        await until(passed_three_times, "the sweeper passed three times")
        assert await snapshot(redis_client) == seen
        assert await lease.release("default", "someone else")

        async def swept() -> bool:
            return await listed(api) == sorted(KEPT)

        await until(swept, "the sweeper swept once the lease was free")
    finally:
        await stopped(task)
    assert await lease.holder("default") is None


def skips(caplog: pytest.LogCaptureFixture, owner: str) -> int:
    return sum(
        "another sweeper holds its lease" in r.getMessage() and owner in r.getMessage()
        for r in caplog.records
    )


# --- the background task in the app --------------------------------------------------------


class Worker:
    """An app as a worker runs it, sweeping every FAST seconds."""

    def __init__(self, settings: Settings, client: RedisClient) -> None:
        app = create_app(replace(settings, redis_url="redis://unused"), redis_client=client)
        app[SWEEP_INTERVAL] = FAST
        self.app = app
        self.http = TestClient(TestServer(app))

    async def metric(self) -> float:
        async with self.http.get("/metrics") as response:
            text = await response.text()
        found = re.search(r"^chatsessions_sessions_swept_total (\S+)$", text, re.MULTILINE)
        assert found, text
        return float(found.group(1))


@pytest.fixture
async def workers() -> AsyncIterator[Callable[[Settings, RedisClient], Awaitable[Worker]]]:
    started: list[Worker] = []

    async def start(settings: Settings, client: RedisClient) -> Worker:
        worker = Worker(settings, client)
        await worker.http.start_server()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        await worker.http.close()


def with_retention(settings: Settings, days: int = RETENTION, **more: Any) -> Settings:
    return replace(settings, retention_days=days, **more)


def test_the_namespaces_swept_are_the_configured_ones_with_retention(settings: Settings) -> None:
    assert configured_namespaces(settings) == ["default", "other"]
    assert swept_namespaces(settings) == []
    configured = with_retention(
        settings, retention_days_by_namespace=(("other", 0), ("support", 90))
    )
    assert configured_namespaces(configured) == ["default", "other", "support"]
    assert swept_namespaces(configured) == [("default", RETENTION), ("support", 90)]


async def test_each_worker_sweeps_in_the_background(
    api: Api,
    redis_client: RedisClient,
    settings: Settings,
    workers: Callable[[Settings, RedisClient], Awaitable[Worker]],
) -> None:
    await seed(api)
    # Namespace other keeps its sessions: its own retention is off.
    configured = with_retention(settings, retention_days_by_namespace=(("other", 0),))
    worker = await workers(configured, redis_client)

    async def swept() -> bool:
        return await listed(api) == sorted(KEPT)

    await until(swept, "the background sweep deleted the old sessions")
    await consistent(redis_client, "default", "other")
    assert await listed(api, "other") == ["o-1"]
    # It goes on: sessions that become old later go at a later sweep.
    await api.ingest("later", id="m", timestamp=ago(45))

    async def later_gone() -> bool:
        return "later" not in await listed(api)

    await until(later_gone, "a later sweep deleted the session that came in old")
    assert await worker.metric() == len(GONE) + 1


@pytest.fixture
async def another_client(
    redis_client: RedisClient, request: pytest.FixtureRequest
) -> AsyncIterator[RedisClient]:
    """Another client of the test's Redis, as another worker has."""
    other: RedisClient
    if isinstance(redis_client, FakeRedis):
        other = FakeRedis(server=redis_client.connection_pool.connection_kwargs["server"])
    else:
        server: RedisProcess = request.getfixturevalue("redis_server")
        other = Redis.from_url(server.url)
    yield other
    await other.aclose()


async def test_two_workers_never_sweep_a_namespace_at_once(
    api: Api,
    redis_client: RedisClient,
    another_client: RedisClient,
    settings: Settings,
    workers: Callable[[Settings, RedisClient], Awaitable[Worker]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two apps on one Redis, each sweeping every FAST seconds, rounds of old sessions
    that take several steps: every sweep of a namespace ends before the next begins,
    whichever worker runs it."""
    caplog.set_level(logging.DEBUG, logger="chatsessions.sweeper")
    configured = with_retention(settings)
    first = await workers(configured, redis_client)
    second = await workers(configured, another_client)
    for round_ in range(3):
        await bulk_old(api, f"r{round_}", 300, "admin")
        await bulk_old(api, f"r{round_}", 300, "other")

        async def swept() -> bool:
            return not await listed(api) and not await listed(api, "other")

        await until(swept, f"round {round_} swept")
    messages = [record.getMessage() for record in caplog.records]
    for namespace in ("default", "other"):
        holder: str | None = None
        for message in messages:
            if message.startswith(f"sweep of namespace {namespace} begins"):
                assert holder is None, f"{message} while {holder} sweeps"
                holder = owner_in(message)
            elif message.startswith(f"sweep of namespace {namespace} ends"):
                assert owner_in(message) == holder
                holder = None
    # Which worker sweeps, and whether they meet, is up to timing: that a held lease
    # keeps the other out is proved without it (test_a_held_lease_keeps_other_sweepers_out).
    assert await first.metric() + await second.metric() == 2 * 3 * 300
    await consistent(redis_client, "default", "other")


def owner_in(message: str) -> str:
    """The sweeper named at the end of a log line, in brackets."""
    found = re.search(r"\(([^()]+)\)$", message)
    assert found, message
    return found.group(1)


async def bulk_old(api: Api, prefix: str, n: int, token: str) -> None:
    messages = [
        {
            "session_id": f"{prefix}-{k:03d}",
            "id": "m",
            "role": "user",
            "content": "x",
            "channel": "web",
            "timestamp": ago(RETENTION + 1 + k / 1000),
        }
        for k in range(n)
    ]
    status, _ = await api.call("POST", "/api/messages", json={"messages": messages}, token=token)
    assert status == 200


# --- outages and shutdown (real redis-server behind the fault proxy) -----------------------


async def seed_store(store: SessionStore) -> None:
    """The same sessions as :func:`seed`, written through the store."""
    now = now_ms()

    async def message(namespace: str, session_id: str, days: float, channel: str) -> None:
        when = now - int(days * DAY_MS)
        sent = MessageIn("m", "user", "x", when, None, channel)
        await store.add_message(namespace, session_id, sent, now=now)

    for session_id, days in [("old", 40), ("old-2", 31), ("recent", 1), ("edge", 29.5)]:
        await message("default", session_id, days, "web")
    for session_id in ("pinned-old", "archived-old", "archived-pinned-old"):
        await message("default", session_id, 90, "slack")
    await message("other", "o-1", 90, "web")
    for session_id, change in [
        ("pinned-old", SessionChange(pinned=True)),
        ("archived-old", SessionChange(archived=True)),
        ("archived-pinned-old", SessionChange(archived=True, pinned=True)),
    ]:
        await store.update_session("default", session_id, change, now=now)


async def present(store: SessionStore, namespace: str = "default") -> list[str]:
    found = []
    for session_id in [*GONE, *KEPT, "o-1"]:
        try:
            await store.get_session(namespace, session_id, now=now_ms())
        except SessionNotFound:
            continue
        found.append(session_id)
    return sorted(found)


@pytest.fixture
async def proxied(fault_proxy: FaultProxy) -> AsyncIterator[tuple[SessionStore, SweepLease]]:
    """A store and a lease reaching the run's redis-server through the fault proxy."""
    client = Redis.from_url(fault_proxy.url)
    store = SessionStore(client, active_window_ms=ACTIVE_WINDOW_MS, timeout=5.0)
    lease = SweepLease(client, 5.0)
    yield store, lease
    await lease.aclose()
    await store.aclose()
    await client.aclose()


@pytest.mark.real
async def test_a_redis_outage_is_logged_and_the_sweep_runs_again(
    fault_proxy: FaultProxy,
    proxied: tuple[SessionStore, SweepLease],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chatsessions.sweeper")
    store, lease = proxied
    await seed_store(store)
    metrics = Metrics()
    fault_proxy.refuse(LOADING)
    running = sweeper(store, lease, metrics)
    task = asyncio.create_task(running.run())
    try:

        async def warned_twice() -> bool:
            return sum("Redis cannot answer" in r.getMessage() for r in caplog.records) >= 2

        await until(warned_twice, "two sweeps met the outage")
        assert not task.done()
        assert "LOADING" in caplog.text
        fault_proxy.clear()

        async def swept() -> bool:
            return await present(store) == sorted(KEPT)

        await until(swept, "the sweep after the outage deleted the old sessions")
    finally:
        await stopped(task)
    assert metrics.counts.counters["sessions_swept"] == len(GONE)
    assert "retention: deleted 3 sessions of namespace default" in caplog.text


@pytest.mark.real
async def test_a_sweep_stopped_midway_gives_its_lease_back(
    fault_proxy: FaultProxy, proxied: tuple[SessionStore, SweepLease]
) -> None:
    store, lease = proxied
    await seed_store(store)
    sweep_sha = hashlib.sha1(script_text("sweep").encode()).hexdigest()
    held = fault_proxy.hold(both(named("EVALSHA"), touching(sweep_sha)))
    running = sweeper(store, lease)
    task = asyncio.create_task(running.run())
    try:

        async def sweeping() -> bool:
            return held.fired > 0 and await lease.holder("default") == running.owner

        await until(sweeping, "a sweep step is under way")
        await stopped(task)
        assert await lease.holder("default") is None
    finally:
        fault_proxy.release()
        await stopped(task)


# --- chatsessions sweep --------------------------------------------------------------------


@pytest.fixture
async def real_store(redis_server: RedisProcess) -> AsyncIterator[SessionStore]:
    """A store on the run's redis-server, flushed first."""
    client = Redis.from_url(redis_server.url)
    await client.flushall()
    opened = SessionStore(client, active_window_ms=ACTIVE_WINDOW_MS)
    yield opened
    await opened.aclose()
    await client.aclose()


async def sweep_command(*args: str) -> int:
    # main() runs its own event loop, so it goes to a thread of its own.
    return await asyncio.to_thread(main, ["sweep", *args])


@pytest.mark.real
async def test_sweep_command_lists_then_deletes(
    redis_server: RedisProcess,
    real_store: SessionStore,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    await seed_store(real_store)
    client = Redis.from_url(redis_server.url)
    try:
        seen = await snapshot(client)
        url = ("--redis-url", redis_server.url)
        assert await sweep_command(*url, "--dry-run", "--days", str(RETENTION)) == 0
        out = capsys.readouterr().out.splitlines()
        # The ids, one a line, then the count (namespace other is not configured here).
        assert sorted(out[:-1]) == sorted(GONE)
        assert out[-1].startswith(
            f"namespace default: 3 sessions would go, inactive for more than {RETENTION} days"
        )
        assert out[-1].endswith("; pinned sessions stay")
        assert await snapshot(client) == seen
        # Retention as configured: on for default, off for other.
        config = tmp_path / "chatsessions.toml"
        config.write_text(
            f"retention_days = {RETENTION}\n[retention_days_by_namespace]\nother = 0\n"
        )
        assert await sweep_command(*url, "--config", str(config)) == 0
        out = capsys.readouterr().out.splitlines()
        assert out[0] == (
            "namespace other: retention is off for it, nothing to sweep; --days N sweeps it anyway"
        )
        assert out[1].startswith("namespace default: deleted 3 sessions inactive for more than")
        assert len(out) == 2
        assert await present(real_store) == sorted(KEPT)
        assert await present(real_store, "other") == ["o-1"]
        report = await InvariantChecker(client).check("default")
        assert report.ok, report.problems
        # Again: nothing left to go.
        assert await sweep_command(*url, "--config", str(config), "--namespace", "default") == 0
        assert capsys.readouterr().out.startswith("namespace default: deleted 0 sessions")
        # --days for a namespace whose retention is off.
        assert await sweep_command(*url, "--namespace", "other", "--days", "60") == 0
        assert capsys.readouterr().out.startswith("namespace other: deleted 1 session ")
        assert await present(real_store, "other") == []
    finally:
        await client.aclose()


def test_sweep_command_with_retention_off_does_nothing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("CHATSESSIONS_"):
            monkeypatch.delenv(name)
    # No Redis listens there: the command must not need one.
    assert main(["sweep", "--redis-url", "redis://127.0.0.1:1/0"]) == 0
    assert capsys.readouterr().out == (
        "namespace default: retention is off for it, nothing to sweep; --days N sweeps it anyway\n"
    )
    assert main(["sweep", "--redis-url", "redis://127.0.0.1:1/0", "--days", "0"]) == 2
    assert "config error: --days" in capsys.readouterr().err
    assert main(["sweep", "--redis-url", "redis://x", "--namespace", "Bad!", "--days", "1"]) == 2
    assert "config error: --namespace" in capsys.readouterr().err


def run_sweep_process(url: str, on_terminal: bool, *args: str) -> tuple[int, str]:
    """`chatsessions sweep` as its own process, its output on a pseudo-terminal or a pipe."""
    command = [sys.executable, "-m", "service", "sweep", "--redis-url", url, *args]
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHATSESSIONS_")},
        "COLUMNS": "100",
        "TERM": "xterm",
    }
    return run_shown(command, env, on_terminal)


@pytest.mark.real
@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "delete"])
async def test_sweep_command_shows_progress_on_a_terminal_only(
    redis_server: RedisProcess, real_store: SessionStore, dry_run: bool
) -> None:
    args = ["--days", str(RETENTION), *(["--dry-run"] if dry_run else [])]
    summary = "3 sessions would go" if dry_run else "deleted 3 sessions"
    await seed_store(real_store)
    code, piped = await asyncio.to_thread(run_sweep_process, redis_server.url, False, *args)
    assert code == 0
    assert "\x1b[" not in piped
    lines = piped.splitlines()
    assert lines[-1].startswith(f"namespace default: {summary}")
    assert sorted(lines[:-1]) == (sorted(GONE) if dry_run else [])
    if not dry_run:
        assert await present(real_store) == sorted(KEPT)
        await seed_store(real_store)
    code, shown = await asyncio.to_thread(run_sweep_process, redis_server.url, True, *args)
    assert code == 0
    # The bar drew itself with the terminal's control sequences; the pipe had none.
    assert "\x1b[" in shown
    assert f"namespace default: {summary}" in shown
    if dry_run:
        assert all(session_id in shown for session_id in GONE)
    assert await present(real_store) == sorted(KEPT if not dry_run else [*GONE, *KEPT])


@pytest.mark.real
async def test_sweep_command_waits_for_a_workers_sweep(
    redis_server: RedisProcess, real_store: SessionStore, capsys: pytest.CaptureFixture[str]
) -> None:
    await seed_store(real_store)
    client = Redis.from_url(redis_server.url)
    lease = SweepLease(client, 5.0)
    try:
        assert await lease.acquire("default", "a worker", 60_000)
        command = asyncio.create_task(
            sweep_command("--redis-url", redis_server.url, "--days", str(RETENTION))
        )
        err = ""

        async def waiting() -> bool:
            nonlocal err
            err += capsys.readouterr().err
            return "holds its lease; waiting for it to end" in err

        await until(waiting, "the command waits")
        assert not command.done()
        assert await present(real_store) == sorted([*GONE, *KEPT])
        assert await lease.release("default", "a worker")
        assert await command == 0
        assert "namespace default: deleted 3 sessions" in capsys.readouterr().out
        assert await present(real_store) == sorted(KEPT)
        assert await lease.holder("default") is None
    finally:
        # A command still waiting goes on and ends.
        await lease.release("default", "a worker")
        await lease.aclose()
        await client.aclose()
