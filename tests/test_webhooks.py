"""Webhooks (SPEC §6, service/webhooks.py): real HTTP receivers on 127.0.0.1 get each
event as a signed POST, at least once, in order per endpoint; the delivery state in
Redis (service/store/webhook_state.py) carries delivery over a restart, a second worker
and a Redis outage. Every wait is bounded by a count of short sleeps; no assertion is
about time."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import logging
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from fault_proxy import LOADING, FaultProxy
from redis.asyncio import Redis

from service.app import create_app
from service.appkeys import WEBHOOK_TIMING, WEBHOOKS
from service.models import now_ms
from service.settings import Settings, WebhookConfig
from service.store import RedisClient, SessionStore
from service.store.events import FIRST
from service.store.webhook_state import WebhookState, webhook_keys
from service.webhooks import (
    EVENT_ID_HEADER,
    SIGNATURE_HEADER,
    Timing,
    Webhooks,
    doubling,
    signature,
)

from conftest import ACTIVE_WINDOW_MS
from redis_process import RedisProcess

ROOT = Path(__file__).resolve().parent.parent
NS = "default"
SECRET = "whsec-test-0123456789"
# A query that must never reach a log line, as a receiver's key in its URL would.
URL_QUERY_SECRET = "query-key-5f2d9c"
# Short pauses, so that retries and takeovers happen within a test.
FAST = Timing(retry_first=0.01, retry_longest=0.05, lease=1.0)
# Each wait: up to this many sleeps of TICK seconds.
TICKS = 3000
TICK = 0.01


async def until(check: Callable[[], Awaitable[bool] | bool], what: str) -> None:
    """Wait until ``check()`` holds, up to TICKS short sleeps."""
    for _ in range(TICKS):
        outcome = check()
        if outcome if isinstance(outcome, bool) else await outcome:
            return
        await asyncio.sleep(TICK)
    raise AssertionError(f"never happened: {what}")


@dataclass
class Received:
    event_id: str
    body: bytes
    headers: dict[str, str]


@dataclass
class Receiver:
    """A webhook endpoint on 127.0.0.1 that records every POST as it arrives. The first
    ``hang_first`` requests get no answer (until the receiver closes), the next
    ``fail_first`` answer 500; after those, ``status``."""

    hang_first: int = 0
    fail_first: int = 0
    status: int = 200
    requests: list[Received] = field(default_factory=list)
    # Event ids this receiver answered 2xx, in order.
    acknowledged: list[str] = field(default_factory=list)
    _closing: asyncio.Event = field(default_factory=asyncio.Event)
    _server: TestServer | None = None

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._server = TestServer(app, host="127.0.0.1")
        await self._server.start_server()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return str(self._server.make_url(f"/hook?key={URL_QUERY_SECRET}"))

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        event_id = request.headers.get(EVENT_ID_HEADER, "")
        number = len(self.requests)
        self.requests.append(Received(event_id, body, dict(request.headers)))
        if number < self.hang_first:
            await self._closing.wait()
            return web.Response(status=503)
        if number < self.hang_first + self.fail_first:
            return web.Response(status=500)
        if 200 <= self.status < 300:
            self.acknowledged.append(event_id)
        return web.Response(status=self.status)

    def ids(self) -> list[str]:
        return [received.event_id for received in self.requests]

    async def close(self) -> None:
        self._closing.set()
        if self._server is not None:
            await self._server.close()


@pytest.fixture
async def receivers() -> AsyncIterator[Callable[..., Awaitable[Receiver]]]:
    opened: list[Receiver] = []

    async def start(**behaviour: Any) -> Receiver:
        receiver = await Receiver(**behaviour).start()
        opened.append(receiver)
        return receiver

    yield start
    for receiver in opened:
        await receiver.close()


class Worker:
    """One app, as a worker runs it, delivering its webhooks until stopped."""

    def __init__(self, settings: Settings, client: RedisClient, timing: Timing) -> None:
        app = create_app(replace(settings, redis_url="redis://unused"), redis_client=client)
        app[WEBHOOK_TIMING] = timing
        self.app = app
        self.http = TestClient(TestServer(app))
        self.running = False

    async def start(self) -> Worker:
        await self.http.start_server()
        self.running = True
        return self

    @property
    def webhooks(self) -> Webhooks:
        return self.app[WEBHOOKS]

    async def metrics(self) -> str:
        async with self.http.get("/metrics") as response:
            assert response.status == 200
            return await response.text()

    async def stop(self) -> None:
        if self.running:
            self.running = False
            await self.http.close()


@pytest.fixture
async def workers(
    receivers: Callable[..., Awaitable[Receiver]],
) -> AsyncIterator[Callable[..., Awaitable[Worker]]]:
    """Starts workers; stops them before the receivers close (this depends on those)."""
    started: list[Worker] = []

    async def start(settings: Settings, client: RedisClient, timing: Timing = FAST) -> Worker:
        worker = await Worker(settings, client, timing).start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        await worker.stop()


def hook(receiver: Receiver, name: str = "hook", **options: Any) -> WebhookConfig:
    return WebhookConfig(name=name, url=receiver.url, secret=SECRET, namespace=NS, **options)


def with_hooks(settings: Settings, *hooks: WebhookConfig, **more: Any) -> Settings:
    return replace(settings, webhooks=hooks, **more)


async def write(store: SessionStore, *session_ids: str) -> None:
    for session_id in session_ids:
        await store.create_session(
            NS, session_id, channel="web", title=None, metadata=None, now=now_ms()
        )


async def event_ids(store: SessionStore) -> list[str]:
    replay = await store.replay(NS, FIRST, limit=10_000, now=now_ms())
    return [event.id for event in replay.events]


async def started(state: WebhookState, name: str = "hook") -> None:
    """Wait until the endpoint has its position, so that what is written next is not
    the history a new endpoint skips."""

    async def known() -> bool:
        return await state.position(NS, name) is not None

    await until(known, f"{name} has a position")


async def caught_up(state: WebhookState, store: SessionStore, name: str = "hook") -> None:
    """Wait until the endpoint's stored position is the newest event."""
    newest = (await event_ids(store))[-1]

    async def there() -> bool:
        return await state.position(NS, name) == newest

    await until(there, f"{name} at {newest}")


def metric(text: str, counter: str, name: str = "hook") -> float:
    found = re.search(
        rf'^chatsessions_webhook_{counter}_total\{{webhook="{name}"\}} (\S+)$', text, re.MULTILINE
    )
    assert found, (counter, name, text)
    return float(found.group(1))


def increasing(ids: list[str]) -> bool:
    keys = [tuple(int(part) for part in event_id.split("-")) for event_id in ids]
    return all(a < b for a, b in itertools.pairwise(keys))


@pytest.fixture
async def state(redis_client: RedisClient) -> AsyncIterator[WebhookState]:
    opened = WebhookState(redis_client, 5.0)
    yield opened
    await opened.aclose()


@pytest.fixture
async def real_redis(redis_server: RedisProcess) -> AsyncIterator[RedisProcess]:
    """The run's redis-server, flushed."""
    flushing = Redis.from_url(redis_server.url)
    await flushing.flushall()
    await flushing.aclose()
    yield redis_server


@pytest.fixture
async def clients() -> AsyncIterator[Callable[[str], RedisClient]]:
    """Separate clients of one server, as separate workers have; closed at the end."""
    opened: list[RedisClient] = []

    def open_client(url: str) -> RedisClient:
        client = Redis.from_url(url)
        opened.append(client)
        return client

    yield open_client
    for client in opened:
        await client.aclose()


# --- pieces ------------------------------------------------------------------------------


def test_signature_is_the_hex_hmac_sha256_of_the_raw_body() -> None:
    body = b'{"id":"1-0","type":"session.created","data":{}}'
    expected = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert signature(SECRET, body) == f"sha256={expected}"
    assert signature(SECRET, body + b" ") != signature(SECRET, body)
    assert signature(SECRET + "x", body) != signature(SECRET, body)


def test_retry_pauses_double_with_jitter_up_to_the_longest() -> None:
    for attempt in range(12):
        pause = doubling(1.0, 300.0, attempt)
        assert min(300.0, 2.0**attempt) / 2 <= pause <= min(300.0, 2.0**attempt)
    # However many attempts an event had, the pause stays a number within the bound.
    assert 150.0 <= doubling(1.0, 300.0, 10_000) <= 300.0


async def test_a_new_endpoint_starts_after_the_newest_event(
    store: SessionStore, state: WebhookState
) -> None:
    empty = await state.acquire(NS, "empty", "w1", 10_000)
    assert empty is not None and (empty.position, empty.new) == (FIRST, True)
    await write(store, "a", "b")
    newest = (await event_ids(store))[-1]
    held = await state.acquire(NS, "hook", "w1", 10_000)
    assert held is not None and (held.position, held.new) == (newest, True)
    again = await state.acquire(NS, "hook", "w1", 10_000)
    assert again is not None and (again.position, again.new) == (newest, False)


async def test_only_the_lease_holder_moves_the_position(
    redis_client: RedisClient, store: SessionStore, state: WebhookState
) -> None:
    await write(store, "a", "b")
    first, second = await event_ids(store)
    assert await state.acquire(NS, "hook", "w1", 10_000) is not None
    assert await state.acquire(NS, "hook", "w2", 10_000) is None
    assert await state.holder(NS, "hook") == "w1"
    assert not await state.advance(NS, "hook", "w2", first, 10_000)
    assert await state.position(NS, "hook") == second
    assert not await state.release(NS, "hook", "w2")
    assert await state.advance(NS, "hook", "w1", first, 10_000)
    assert await state.position(NS, "hook") == first
    # Given up, the lease goes to the next to ask, with the position where it was.
    assert await state.release(NS, "hook", "w1")
    taken = await state.acquire(NS, "hook", "w2", 10_000)
    assert taken is not None and (taken.position, taken.new) == (first, False)
    assert not await state.advance(NS, "hook", "w1", second, 10_000)
    # The state lives under the namespace's hash tag, with its events.
    lease, position = webhook_keys(NS, "hook")
    assert (lease, position) == (
        "cs:{default}:webhook:hook:lease",
        "cs:{default}:webhook:hook:position",
    )
    assert 0 < await redis_client.pttl(lease) <= 10_000
    assert await redis_client.get(position) == first.encode()


async def test_a_lease_not_renewed_runs_out(state: WebhookState) -> None:
    assert await state.acquire(NS, "hook", "w1", 50) is not None

    async def taken_over() -> bool:
        return await state.acquire(NS, "hook", "w2", 10_000) is not None

    await until(taken_over, "the lease ran out")
    assert not await state.advance(NS, "hook", "w1", "5-0", 10_000)


# --- delivery, on fakeredis and a real redis-server ----------------------------------------


async def test_each_event_arrives_signed_in_order(
    redis_client: RedisClient,
    store: SessionStore,
    state: WebhookState,
    settings: Settings,
    receivers: Callable[..., Awaitable[Receiver]],
    workers: Callable[..., Awaitable[Worker]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chatsessions")
    receiver = await receivers()
    await write(store, "history")
    worker = await workers(with_hooks(settings, hook(receiver)), redis_client)
    await started(state)
    await write(store, "a", "b", "c")
    await store.rename_session(NS, "a", "Renamed", now=now_ms())
    await store.delete_session(NS, "b")
    ids = (await event_ids(store))[1:]
    await until(lambda: len(receiver.acknowledged) == len(ids), "every event delivered")
    # The history written before the endpoint's first start is not sent.
    assert receiver.ids() == ids == receiver.acknowledged
    replay = await store.replay(NS, FIRST, limit=100, now=now_ms())
    for received, event in zip(receiver.requests, replay.events[1:], strict=True):
        assert received.headers["Content-Type"] == "application/json"
        assert received.headers["User-Agent"].startswith("chatsessions-webhooks/")
        assert received.headers[EVENT_ID_HEADER] == event.id
        expected = hmac.new(SECRET.encode(), received.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(received.headers[SIGNATURE_HEADER], f"sha256={expected}")
        body = orjson.loads(received.body)
        assert set(body) == {"id", "type", "data"}
        assert (body["id"], body["type"]) == (event.id, event.type)
        assert body["data"]["session"]["id"] == event.session_id
    types = [orjson.loads(r.body)["type"] for r in receiver.requests]
    assert types == [
        "session.created",
        "session.created",
        "session.created",
        "session.updated",
        "session.deleted",
    ]
    await caught_up(state, store)
    text = await worker.metrics()
    assert (metric(text, "delivered"), metric(text, "failed")) == (5, 0)
    assert (metric(text, "retried"), metric(text, "dropped")) == (0, 0)
    assert URL_QUERY_SECRET not in caplog.text and SECRET not in caplog.text


async def test_an_endpoint_failing_at_first_gets_each_event_once_in_order(
    redis_client: RedisClient,
    store: SessionStore,
    state: WebhookState,
    settings: Settings,
    receivers: Callable[..., Awaitable[Receiver]],
    workers: Callable[..., Awaitable[Worker]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = await receivers(fail_first=3)
    worker = await workers(with_hooks(settings, hook(receiver)), redis_client)
    await started(state)
    await write(store, "a", "b", "c", "d")
    ids = await event_ids(store)
    await until(lambda: len(receiver.acknowledged) == 4, "every event delivered")
    assert receiver.acknowledged == ids
    # The first event was tried until it got through; the others went once each.
    assert receiver.ids() == [ids[0]] * 4 + ids[1:]
    await caught_up(state, store)
    text = await worker.metrics()
    assert (metric(text, "delivered"), metric(text, "failed"), metric(text, "retried")) == (4, 3, 3)
    assert metric(text, "dropped") == 0
    assert "not delivered (HTTP 500)" in caplog.text
    assert URL_QUERY_SECRET not in caplog.text and SECRET not in caplog.text


async def test_a_hanging_endpoint_delays_only_its_own_events(
    redis_client: RedisClient,
    store: SessionStore,
    state: WebhookState,
    settings: Settings,
    receivers: Callable[..., Awaitable[Receiver]],
    workers: Callable[..., Awaitable[Worker]],
) -> None:
    hanging = await receivers(hang_first=1_000)
    healthy = await receivers()
    slow_hook, fast_hook = hook(hanging, "slow"), hook(healthy, "fast")
    # The hanging endpoint's one POST outlasts the test: it never times out here.
    configured = with_hooks(settings, slow_hook, fast_hook, webhook_timeout=600.0)
    worker = await workers(configured, redis_client)
    await started(state, "slow")
    await started(state, "fast")
    start = await state.position(NS, "slow")
    await write(store, *(f"s{n}" for n in range(6)))
    ids = await event_ids(store)
    await until(lambda: healthy.acknowledged == ids, "the healthy endpoint has every event")
    # Meanwhile the hanging endpoint holds its first event, and has not been sent another.
    assert hanging.ids() == ids[:1] and hanging.acknowledged == []
    text = await worker.metrics()
    assert metric(text, "delivered", "fast") == 6
    assert metric(text, "delivered", "slow") == metric(text, "failed", "slow") == 0
    # The app stops with that POST still open, and the lease is given back.
    await worker.stop()
    assert await state.holder(NS, "slow") is None
    assert await state.position(NS, "slow") == start


async def test_a_delivery_that_times_out_is_tried_again(
    redis_client: RedisClient,
    store: SessionStore,
    state: WebhookState,
    settings: Settings,
    receivers: Callable[..., Awaitable[Receiver]],
    workers: Callable[..., Awaitable[Worker]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = await receivers(hang_first=2)
    worker = await workers(with_hooks(settings, hook(receiver), webhook_timeout=0.2), redis_client)
    await started(state)
    await write(store, "a", "b")
    ids = await event_ids(store)
    await until(lambda: receiver.acknowledged == ids, "both events delivered")
    assert receiver.ids() == [ids[0]] * 3 + [ids[1]]
    text = await worker.metrics()
    assert (metric(text, "delivered"), metric(text, "failed"), metric(text, "retried")) == (2, 2, 2)
    assert "no answer within webhook_timeout" in caplog.text


async def test_an_event_failing_past_its_max_age_is_dropped_and_delivery_goes_on(
    redis_client: RedisClient,
    store: SessionStore,
    state: WebhookState,
    settings: Settings,
    receivers: Callable[..., Awaitable[Receiver]],
    workers: Callable[..., Awaitable[Worker]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver = await receivers(status=500)
    worker = await workers(with_hooks(settings, hook(receiver), webhook_max_age=0.3), redis_client)
    await started(state)
    await write(store, "a", "b")
    dropped_ids = await event_ids(store)

    async def both_dropped() -> bool:
        return metric(await worker.metrics(), "dropped") == 2

    await until(both_dropped, "both events dropped")
    # Each was tried, more than once, in order, and never acknowledged.
    assert set(receiver.ids()) == set(dropped_ids) and receiver.acknowledged == []
    assert receiver.ids().count(dropped_ids[0]) > 1
    assert receiver.ids() == sorted(receiver.ids(), key=lambda i: dropped_ids.index(i))
    for event_id in dropped_ids:
        assert f"webhook hook: dropped event {event_id} after" in caplog.text
    # The endpoint recovers: the next event is delivered, and the dropped ones stay so.
    receiver.status = 200
    await write(store, "c")
    newest = (await event_ids(store))[-1]
    await until(lambda: receiver.acknowledged == [newest], "the next event delivered")
    text = await worker.metrics()
    assert (metric(text, "dropped"), metric(text, "delivered")) == (2, 1)
    assert metric(text, "failed") == metric(text, "retried") + 2
    assert URL_QUERY_SECRET not in caplog.text and SECRET not in caplog.text


async def test_the_events_filter_keeps_only_those_types(
    redis_client: RedisClient,
    store: SessionStore,
    state: WebhookState,
    settings: Settings,
    receivers: Callable[..., Awaitable[Receiver]],
    workers: Callable[..., Awaitable[Worker]],
) -> None:
    every, deletions = await receivers(), await receivers()
    configured = with_hooks(
        settings,
        hook(every, "every"),
        hook(deletions, "deletions", events=frozenset({"session.deleted"})),
    )
    await workers(configured, redis_client)
    await started(state, "every")
    await started(state, "deletions")
    await write(store, "a", "b")
    await store.delete_session(NS, "a")
    await store.rename_session(NS, "b", "Kept", now=now_ms())
    await store.delete_session(NS, "b")
    await write(store, "c")
    replay = await store.replay(NS, FIRST, limit=100, now=now_ms())
    ids = [event.id for event in replay.events]
    await until(lambda: every.acknowledged == ids, "every event to the unfiltered endpoint")
    deleted = [event.id for event in replay.events if event.type == "session.deleted"]
    await until(lambda: deletions.acknowledged == deleted, "the deletions delivered")
    assert deletions.ids() == deleted
    assert {orjson.loads(r.body)["type"] for r in deletions.requests} == {"session.deleted"}
    # The position moves past the events filtered out, too.
    await caught_up(state, store, "deletions")


async def test_a_position_no_longer_kept_goes_on_from_the_newest_event(
    redis_client: RedisClient,
    store: SessionStore,
    state: WebhookState,
    settings: Settings,
    receivers: Callable[..., Awaitable[Receiver]],
    workers: Callable[..., Awaitable[Worker]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    await write(store, "old-1", "old-2")
    # A position from before the oldest event kept: what came after it may be gone.
    assert await state.acquire(NS, "hook", "earlier", 10_000) is not None
    assert await state.advance(NS, "hook", "earlier", "1-0", 10_000)
    assert await state.release(NS, "hook", "earlier")
    receiver = await receivers()
    await workers(with_hooks(settings, hook(receiver)), redis_client)
    newest = (await event_ids(store))[-1]

    async def moved_on() -> bool:
        return await state.position(NS, "hook") == newest

    await until(moved_on, "the position moved to the newest event")
    assert "the events after 1-0 are no longer kept" in caplog.text
    await write(store, "new")
    ids = await event_ids(store)
    await until(lambda: receiver.acknowledged == ids[-1:], "the new event delivered")
    assert receiver.ids() == ids[-1:]


async def test_the_python_and_javascript_verifiers_of_the_docs_accept_a_real_delivery(
    redis_client: RedisClient,
    store: SessionStore,
    state: WebhookState,
    settings: Settings,
    receivers: Callable[..., Awaitable[Receiver]],
    workers: Callable[..., Awaitable[Worker]],
    tmp_path: Path,
) -> None:
    receiver = await receivers()
    await workers(with_hooks(settings, hook(receiver)), redis_client)
    await started(state)
    await write(store, "a")
    await until(lambda: len(receiver.acknowledged) == 1, "the event delivered")
    [received] = receiver.requests
    header = received.headers[SIGNATURE_HEADER]
    python_example, js_example = docs_examples()

    # Python: the document's function, run as written.
    scope: dict[str, Any] = {}
    exec(python_example, scope)
    verified = scope["verified"]
    assert verified(SECRET, received.body, header) is True
    assert verified(SECRET, received.body + b" ", header) is False
    assert verified("another secret", received.body, header) is False
    assert verified(SECRET, received.body, "sha256=" + "0" * 64) is False
    assert verified(SECRET, received.body, "") is False

    # JavaScript: the document's function, run by node on the same bytes.
    node = shutil.which("node")
    assert node, "node runs the JavaScript verifier"
    body_file = tmp_path / "body"
    harness = (
        'import { readFileSync } from "node:fs";\n'
        "const body = readFileSync(process.env.BODY_FILE);\n"
        "const cases = [[process.env.SECRET, body, process.env.SIGNATURE],\n"
        "  [process.env.SECRET, Buffer.concat([body, Buffer.from(' ')]), process.env.SIGNATURE],\n"
        "  ['another secret', body, process.env.SIGNATURE],\n"
        "  [process.env.SECRET, body, 'sha256=' + '0'.repeat(64)],\n"
        "  [process.env.SECRET, body, undefined]];\n"
        "console.log(JSON.stringify(cases.map((c) => verified(...c))));\n"
    )
    body_file.write_bytes(received.body)
    result = await asyncio.to_thread(
        subprocess.run,
        [node, "--input-type=module", "-e", js_example + harness],
        env={**os.environ, "BODY_FILE": str(body_file), "SECRET": SECRET, "SIGNATURE": header},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout) == [True, False, False, False, False]


def docs_examples() -> tuple[str, str]:
    """The Python and the JavaScript block of docs/api.md's Webhooks section."""
    text = (ROOT / "docs" / "api.md").read_text()
    section = text.split("\n## Webhooks\n", 1)[1].split("\n## ", 1)[0]
    (python_example,) = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    (js_example,) = re.findall(r"```js\n(.*?)```", section, flags=re.DOTALL)
    return python_example, js_example


# --- delivery state across workers, restarts and outages (real redis-server) ---------------


@pytest.mark.real
async def test_a_restart_resumes_from_the_stored_position(
    real_redis: RedisProcess,
    clients: Callable[[str], RedisClient],
    settings: Settings,
    receivers: Callable[..., Awaitable[Receiver]],
    workers: Callable[..., Awaitable[Worker]],
) -> None:
    receiver = await receivers()
    configured = with_hooks(settings, hook(receiver))
    writer = SessionStore(clients(real_redis.url), active_window_ms=ACTIVE_WINDOW_MS)
    state = WebhookState(clients(real_redis.url), 5.0)
    first = await workers(configured, clients(real_redis.url))
    await started(state)
    await write(writer, "a", "b", "c")
    await until(lambda: len(receiver.acknowledged) == 3, "the first three delivered")
    await caught_up(state, writer)
    await first.stop()
    # Written while no worker runs: the next start delivers them.
    await write(writer, "d", "e", "f")
    await workers(configured, clients(real_redis.url))
    ids = await event_ids(writer)
    await until(lambda: len(receiver.acknowledged) == 6, "the rest delivered after the restart")
    assert receiver.ids() == receiver.acknowledged == ids
    await caught_up(state, writer)
    await writer.aclose()
    await state.aclose()


@pytest.mark.real
async def test_two_workers_deliver_each_event_once(
    real_redis: RedisProcess,
    clients: Callable[[str], RedisClient],
    settings: Settings,
    receivers: Callable[..., Awaitable[Receiver]],
    workers: Callable[..., Awaitable[Worker]],
) -> None:
    receiver = await receivers()
    configured = with_hooks(settings, hook(receiver), webhook_timeout=0.3)
    writer = SessionStore(clients(real_redis.url), active_window_ms=ACTIVE_WINDOW_MS)
    state = WebhookState(clients(real_redis.url), 5.0)
    # A lease of seconds: a busy host never lets it run out while its holder delivers.
    timing = replace(FAST, lease=3.0)
    one = await workers(configured, clients(real_redis.url), timing)
    two = await workers(configured, clients(real_redis.url), timing)
    assert one.webhooks.owner != two.webhooks.owner
    await started(state)
    for batch in range(3):
        await write(writer, *(f"s{batch}-{n}" for n in range(5)))
    ids = await event_ids(writer)
    await until(lambda: len(receiver.acknowledged) == len(ids), "every event delivered")
    await caught_up(state, writer)
    holder = await state.holder(NS, "hook")
    delivering, other = (one, two) if holder == one.webhooks.owner else (two, one)
    assert holder == delivering.webhooks.owner
    [endpoint] = other.webhooks.endpoints
    assert not endpoint.holding
    # The worker that delivers stops; the other takes the endpoint over.
    await delivering.stop()
    await write(writer, *(f"t{n}" for n in range(5)))
    ids = await event_ids(writer)
    await until(lambda: len(receiver.acknowledged) == len(ids), "the rest delivered")
    await caught_up(state, writer)
    assert await state.holder(NS, "hook") == other.webhooks.owner
    # Each event once, in order, from one worker or the other: no duplicates, no gaps.
    assert receiver.ids() == receiver.acknowledged == ids
    assert increasing(receiver.ids())
    await writer.aclose()
    await state.aclose()


@pytest.mark.real
async def test_a_redis_outage_pauses_delivery_and_it_goes_on(
    fault_proxy: FaultProxy,
    redis_server: RedisProcess,
    clients: Callable[[str], RedisClient],
    settings: Settings,
    receivers: Callable[..., Awaitable[Receiver]],
    workers: Callable[..., Awaitable[Worker]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chatsessions")
    receiver = await receivers()
    writer = SessionStore(clients(redis_server.url), active_window_ms=ACTIVE_WINDOW_MS)
    state = WebhookState(clients(redis_server.url), 5.0)
    # The worker reaches Redis through the proxy; the test writes past it.
    configured = with_hooks(settings, hook(receiver), webhook_timeout=0.3)
    await workers(configured, clients(fault_proxy.url))
    await started(state)
    await write(writer, "a")
    await until(lambda: len(receiver.acknowledged) == 1, "the first event delivered")
    await caught_up(state, writer)
    refusing = fault_proxy.refuse(LOADING)
    # Written once the worker met the outage, so that no read of them was under way.
    await until(lambda: refusing.fired >= 1, "the worker met the outage")
    await write(writer, "b", "c")
    await until(lambda: refusing.fired >= 5, "the worker kept asking")
    assert len(receiver.requests) == 1
    fault_proxy.clear()
    ids = await event_ids(writer)
    await until(lambda: len(receiver.acknowledged) == 3, "the rest delivered after the outage")
    assert receiver.ids() == receiver.acknowledged == ids
    assert "delivery paused, Redis cannot answer" in caplog.text
    await until(lambda: "Redis answers again" in caplog.text, "the recovery logged")
    await writer.aclose()
    await state.aclose()
