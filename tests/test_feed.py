"""GET /api/events, the change feed (SPEC §6), served by the app on fakeredis and on a real
redis-server: event types and data, replay by Last-Event-ID or since then live with no
gap and no repeat (reconnecting while writes land), reset, filters, heartbeats, one
blocking read per namespace per worker, a client that does not read dropped with its
queue bounded, Redis outages, shutdown and SIGTERM, and token isolation."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import re
import shutil
import signal
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_runner import BaseRunner
from fault_proxy import LOADING, FaultProxy, named
from redis.asyncio import Redis
from serve_process import TEST_TOKEN, ServeProcess, generated_tokens, token_env

from service import feed_handlers
from service.app import create_app, make_runner
from service.appkeys import FEED, STORE
from service.feed import (
    QUEUE_BYTES,
    RETRY_DELAYS,
    Batch,
    Ended,
    FeedHub,
    LiveEvent,
    Subscriber,
)
from service.models import MessageIn, now_ms
from service.settings import Settings
from service.store import RedisClient, SessionStore, keys_of
from service.store.events import FIRST, ChangeEvent

from cluster_process import ClusterProcess
from conftest import Api, Tokens, quote
from redis_process import RedisProcess

# A guard against a hang, never a measure: a wait this long means the test failed.
GUARD = 30.0


@dataclass
class Event:
    id: str
    type: str
    data: dict[str, Any]


@dataclass
class Feed:
    """An open /api/events answer, read event by event."""

    response: ClientResponse
    comments: list[str] = field(default_factory=list)

    async def _block(self) -> list[str] | None:
        """The lines of the next block (up to a blank line); None at the end."""
        lines: list[str] = []
        while True:
            raw = await self.response.content.readline()
            if not raw:
                return None
            line = raw.decode().rstrip("\n")
            if not line:
                if lines:
                    return lines
                continue
            lines.append(line)

    async def next(self) -> Event | None:
        """The next event (comments kept aside); None when the stream ended."""
        async with asyncio.timeout(GUARD):
            while True:
                block = await self._block()
                if block is None:
                    return None
                fields: dict[str, str] = {}
                for line in block:
                    if line.startswith(":"):
                        self.comments.append(line[1:].strip())
                        continue
                    name, _, value = line.partition(":")
                    assert name not in fields, block  # data is always one line
                    fields[name] = value.removeprefix(" ")
                if fields:
                    assert set(fields) == {"id", "event", "data"}, block
                    return Event(fields["id"], fields["event"], orjson.loads(fields["data"]))

    async def event(self) -> Event:
        found = await self.next()
        assert found is not None, "the stream ended"
        return found

    async def take(self, count: int) -> list[Event]:
        return [await self.event() for _ in range(count)]

    async def rest(self) -> list[Event]:
        """Every event up to the end of the stream, which must end cleanly."""
        found = []
        while (event := await self.next()) is not None:
            found.append(event)
        return found

    def close(self) -> None:
        self.response.close()


async def open_feed(
    api: Api,
    *,
    token: str = "admin",
    last_event_id: str | None = None,
    **params: str,
) -> Feed:
    headers = {"Authorization": f"Bearer {api.tokens[token]}"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    response = await api.client.get("/api/events", headers=headers, params=params)
    assert response.status == 200, await response.text()
    assert response.headers["Content-Type"].startswith("text/event-stream")
    assert response.headers["Cache-Control"] == "no-cache"
    return Feed(response)


class ServedAsServeDoes(TestServer):
    """The test server on the runner that serve uses: a request whose client leaves is not
    cancelled (aiohttp's test server cancels it), so the stream finds out by itself."""

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return make_runner(self.app)


@asynccontextmanager
async def serving(
    redis_client: RedisClient, settings: Settings, tokens: Tokens, **changes: Any
) -> AsyncIterator[Api]:
    """The app on ``redis_client`` with ``changes`` to its settings."""
    app = create_app(replace(settings, redis_url="redis://unused", **changes), redis_client)
    async with TestClient(ServedAsServeDoes(app)) as client:
        yield Api(client, tokens)


@pytest.fixture
async def api(redis_client: RedisClient, settings: Settings, tokens: Tokens) -> AsyncIterator[Api]:
    """conftest's api, served as serve serves it."""
    async with serving(redis_client, settings, tokens) as served:
        yield served


async def all_stream_ids(store: SessionStore, namespace: str = "default") -> list[str]:
    """Every event id kept, read page by page (a page is bounded in bytes as well)."""
    ids: list[str] = []
    while True:
        replay = await store.replay(namespace, ids[-1] if ids else FIRST, limit=10_000, now=0)
        assert not replay.reset
        if not replay.events:
            return ids
        ids += [event.id for event in replay.events]


async def stream_ids(api: Api, namespace: str = "default") -> list[str]:
    return await all_stream_ids(api.client.app[STORE], namespace)


def key(event_id: str) -> tuple[int, int]:
    ms, seq = event_id.split("-")
    return int(ms), int(seq)


async def wait_until(condition: Any, what: str) -> None:
    """Polls ``condition()`` a bounded number of times."""
    for _ in range(int(GUARD / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


async def xread_blocked_clients(client: RedisClient) -> int:
    """Connections of the server blocked in XREAD now."""
    listing = await client.execute_command("CLIENT", "LIST")
    text = listing.decode() if isinstance(listing, bytes) else str(listing)
    return sum(
        1 for line in text.splitlines() if " cmd=xread " in f" {line} " and "flags=b" in line
    )


async def xread_calls(client: RedisClient) -> int:
    stats = await client.info("commandstats")
    entry = stats.get("cmdstat_xread")
    return int(entry["calls"]) if entry else 0


async def until_blocked_in_xread(client: RedisClient) -> None:
    """Returns once a connection of the server is blocked in XREAD (the hub's read)."""
    for _ in range(int(GUARD / 0.02)):
        if await xread_blocked_clients(client) == 1:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("no read blocked in XREAD")


async def test_events_carry_their_type_id_and_data(api: Api) -> None:
    feed = await open_feed(api)
    status, created = await api.call(
        "POST", "/api/sessions", json={"id": "s1", "channel": "slack", "title": "Made"}
    )
    assert status == 201
    first = await api.ingest("dm:42", content="Prime numbers in Python", channel="telegram")
    await api.ingest("s1", id="m2", content="second")
    status, _ = await api.call("PATCH", "/api/sessions/s1", json={"title": "Renamed"})
    assert status == 200
    status, _ = await api.call("DELETE", f"/api/sessions/{quote('dm:42')}")
    assert status == 200
    events = await feed.take(5)
    assert [(e.type, e.data["session"]["id"]) for e in events] == [
        ("session.created", "s1"),
        ("session.created", "dm:42"),
        ("session.updated", "s1"),
        ("session.updated", "s1"),
        ("session.deleted", "dm:42"),
    ]
    # Every id is the event's position in the namespace's stream, in order.
    assert [e.id for e in events] == await stream_ids(api)
    made, with_message, message_added, renamed, deleted = (e.data for e in events)
    assert "message" not in made
    assert {k: made["session"][k] for k in ("id", "title", "channel", "message_count")} == {
        "id": "s1",
        "title": "Made",
        "channel": "slack",
        "message_count": 0,
    }
    assert made["session"]["created_at"] == created["created_at"]
    assert made["session"]["active"] is True
    assert with_message["message"] == first["message"]
    assert with_message["session"]["title"] == "Prime numbers in Python"
    assert with_message["session"]["channel"] == "telegram"
    assert message_added["message"]["id"] == "m2"
    assert message_added["message"]["content"] == "second"
    assert message_added["session"]["message_count"] == 1
    assert renamed["session"]["title"] == "Renamed" and "message" not in renamed
    assert deleted == {"session": {"id": "dm:42"}}
    # The session of an event is the list item, as the list answers it.
    status, page = await api.call("GET", "/api/sessions")
    assert page["sessions"] == [renamed["session"]]


async def test_since_and_last_event_id_replay_then_go_live(api: Api) -> None:
    for n in range(4):
        await api.ingest("s", id=f"m{n}")
    ids = await stream_ids(api)
    everything = await open_feed(api, since="0")
    assert [e.id for e in await everything.take(4)] == ids
    after_second = await open_feed(api, last_event_id=ids[1])
    assert [e.id for e in await after_second.take(2)] == ids[2:]
    # The header wins over since: a reconnecting EventSource keeps its first URL.
    header_first = await open_feed(api, last_event_id=ids[2], since="0")
    assert [e.id for e in await header_first.take(1)] == ids[3:]
    at_newest = await open_feed(api, since=ids[-1])
    new_only = await open_feed(api)
    await api.ingest("s", id="m4")
    [live] = (await stream_ids(api))[4:]
    for feed in (everything, after_second, header_first, at_newest, new_only):
        assert (await feed.event()).id == live


async def test_a_replay_of_many_pages_then_live(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feed_handlers, "REPLAY_PAGE", 3)
    status, _ = await api.call(
        "POST",
        "/api/messages",
        json={
            "messages": [
                {"session_id": f"s{n}", "channel": "web", "role": "user", "content": "x"}
                for n in range(10)
            ]
        },
    )
    assert status == 200
    ids = await stream_ids(api)
    assert len(ids) == 10
    feed = await open_feed(api, since=ids[0])
    await api.ingest("s0", id="later")
    got = [e.id for e in await feed.take(10)]
    assert got == (await stream_ids(api))[1:]


async def test_reconnecting_while_writes_land_misses_nothing_and_repeats_nothing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writers keep writing while a client reads a few events, drops its connection and
    comes back with Last-Event-ID, again and again: it sees the whole stream, once."""
    monkeypatch.setattr(feed_handlers, "REPLAY_PAGE", 4)
    writers, per_writer = 3, 40
    rng = random.Random(20)

    async def write(writer: int) -> None:
        for n in range(per_writer):
            await api.ingest(f"w{writer}-{n % 5}", id=f"{writer}-{n}", channel="web")

    writing = asyncio.gather(*(write(w) for w in range(writers)))
    total = writers * per_writer  # every message is new: one event each
    seen: list[str] = []
    reconnects = 0
    feed = await open_feed(api, since="0")
    try:
        while len(seen) < total:
            for _ in range(min(rng.randint(1, 9), total - len(seen))):
                seen.append((await feed.event()).id)
            feed.close()
            # Sometimes at once, sometimes after writes landed meanwhile.
            await asyncio.sleep(rng.choice([0, 0, 0.01, 0.03]))
            feed = await open_feed(api, last_event_id=seen[-1])
            reconnects += 1
        await writing
    finally:
        feed.close()
        writing.cancel()
        with contextlib.suppress(BaseException):
            await writing
    assert reconnects >= 10
    assert seen == await stream_ids(api)
    assert len(seen) == writers * per_writer


@pytest.mark.real
async def test_an_event_both_replayed_and_queued_is_sent_once(
    fault_proxy: FaultProxy, redis_server: RedisProcess, settings: Settings, tokens: Tokens
) -> None:
    """The overlap made certain: an event committed before a replay reads it, whose live
    copy reaches the new subscriber's queue only after the replay sent it."""
    client = Redis.from_url(fault_proxy.url)
    direct = Redis.from_url(redis_server.url)
    try:
        async with serving(client, settings, tokens) as api:
            watcher = await open_feed(api)
            for n in range(1, 4):
                await api.ingest("s", id=f"m{n}")
            assert len(await watcher.take(3)) == 3
            await until_blocked_in_xread(direct)
            held = fault_proxy.hold(named("XREAD"))
            # m4 answers the read sent before the hold; the hub's next read is held.
            await api.ingest("s", id="m4")
            assert (await watcher.event()).data["message"]["id"] == "m4"
            await wait_until(lambda: held.fired >= 1, "the hub's next read was sent")
            await api.ingest("s", id="m5")
            ids = await stream_ids(api)
            resumed = await open_feed(api, last_event_id=ids[1])
            replayed = await resumed.take(3)
            assert [e.data["message"]["id"] for e in replayed] == ["m3", "m4", "m5"]
            fault_proxy.release()
            assert (await watcher.event()).data["message"]["id"] == "m5"
            await api.ingest("s", id="m6")
            assert (await resumed.event()).data["message"]["id"] == "m6"
    finally:
        await client.aclose()
        await direct.aclose()


async def test_a_position_no_longer_kept_answers_reset_then_live(
    api: Api, redis_client: RedisClient
) -> None:
    for n in range(6):
        await api.ingest("s", id=f"m{n}")
    ids = await stream_ids(api)
    await redis_client.xtrim(keys_of("default").events, maxlen=2, approximate=False)
    trimmed = await open_feed(api, last_event_id=ids[0])
    reset = await trimmed.event()
    assert reset.type == "reset" and reset.id == ids[-1]
    assert "no longer kept" in reset.data["detail"]
    # An id the stream never reached (it was deleted and began again, say).
    ahead = await open_feed(api, since="99999999999999-0")
    assert (await ahead.event()) == reset
    await api.ingest("s", id="after")
    [live] = (await stream_ids(api))[2:]
    assert (await trimmed.event()).id == live
    assert (await ahead.event()).id == live
    # The reset's id resumes where it said: nothing before it, nothing twice.
    resumed = await open_feed(api, last_event_id=reset.id)
    assert (await resumed.event()).id == live


@pytest.mark.parametrize(
    ("header", "since", "named"),
    [
        ("abc", None, "Last-Event-ID"),
        ("1-2-3", None, "Last-Event-ID"),
        (None, "-1", "since"),
        (None, "18446744073709551616-0", "since"),
        (None, "12", "since"),
        ("x", "0", "Last-Event-ID"),
    ],
)
async def test_a_malformed_position_answers_400_json(
    api: Api, header: str | None, since: str | None, named: str
) -> None:
    headers = {} if header is None else {"Last-Event-ID": header}
    params = {} if since is None else {"since": since}
    status, body = await api.call("GET", "/api/events", headers=headers, params=params)
    assert status == 400, body
    assert named in body["detail"] and "0 for every event" in body["detail"]


async def test_bad_filters_answer_422_and_no_token_401(api: Api) -> None:
    status, body = await api.call("GET", "/api/events", params={"channel": "no spaces"})
    assert status == 422 and "channel" in body["detail"]
    status, body = await api.call("GET", "/api/events", params={"session_id": ""})
    assert status == 422 and "session_id" in body["detail"]
    status, body = await api.call("GET", "/api/events", token=None)
    assert status == 401


async def test_channel_and_session_id_narrow_the_stream(api: Api) -> None:
    await api.ingest("early", id="e", channel="telegram")
    telegram = await open_feed(api, channel="telegram")
    one = await open_feed(api, session_id="dm:1")
    both = await open_feed(api, channel="web", session_id="dm:1")
    replayed = await open_feed(api, channel="telegram", since="0")
    await api.ingest("dm:1", id="a", channel="web")
    await api.ingest("dm:2", id="b", channel="telegram")
    await api.ingest("dm:1", id="c", channel="web")
    await api.ingest("dm:3", id="d", channel="telegram")
    # A last event that every stream takes, so that each has seen what it would see.
    await api.call("POST", "/api/sessions", json={"id": "end", "channel": "web"})
    await api.call("POST", "/api/sessions", json={"id": "end-t", "channel": "telegram"})

    def summary(events: list[Event]) -> list[tuple[str, str | None]]:
        return [(e.data["session"]["id"], e.data.get("message", {}).get("id")) for e in events]

    assert summary(await telegram.take(3)) == [("dm:2", "b"), ("dm:3", "d"), ("end-t", None)]
    assert summary(await replayed.take(4)) == [
        ("early", "e"),
        ("dm:2", "b"),
        ("dm:3", "d"),
        ("end-t", None),
    ]
    assert summary(await one.take(2)) == [("dm:1", "a"), ("dm:1", "c")]
    assert summary(await both.take(2)) == [("dm:1", "a"), ("dm:1", "c")]


async def test_a_token_sees_only_its_namespace(api: Api) -> None:
    await api.ingest("default-old", id="d0")
    other = await open_feed(api, token="other", since="0")
    mine = await open_feed(api)
    await api.ingest("default-1", id="d1")
    status, _ = await api.call(
        "POST",
        "/api/sessions/other-1/messages",
        token="other",
        json={"role": "user", "content": "hi", "channel": "web", "id": "o1"},
    )
    assert status == 201
    [seen] = await other.take(1)
    assert seen.data["session"]["id"] == "other-1"
    assert (await mine.event()).data["session"]["id"] == "default-1"
    assert [seen.id] == await stream_ids(api, "other")
    # Nothing of default's ever reaches other's stream, replayed or live.
    await api.ingest("default-2", id="d2")
    await api.call(
        "POST",
        "/api/sessions/other-2/messages",
        token="other",
        json={"role": "user", "content": "hi", "channel": "web", "id": "o2"},
    )
    assert (await other.event()).data["session"]["id"] == "other-2"


async def test_heartbeat_comments_keep_an_idle_stream_open(
    redis_client: RedisClient, settings: Settings, tokens: Tokens
) -> None:
    async with serving(redis_client, settings, tokens, events_heartbeat=0.05) as api:
        response = await api.client.get("/api/events", headers=tokens.header("reader"))
        assert response.status == 200
        comments: list[str] = []
        async with asyncio.timeout(GUARD):
            while len(comments) < 3:
                line = (await response.content.readline()).decode()
                assert line in ("\n", ": ping\n"), line
                if line.startswith(":"):
                    comments.append(line)
        response.close()


async def test_a_namespace_reader_stops_when_its_last_subscriber_leaves(
    redis_client: RedisClient, settings: Settings, tokens: Tokens
) -> None:
    async with serving(redis_client, settings, tokens, events_heartbeat=0.05) as api:
        hub = api.client.app[FEED]
        first = await open_feed(api)
        second = await open_feed(api, token="other")
        assert hub.readers() == {"default": 1, "other": 1}
        first.close()
        # The heartbeat finds the closed connection; the reader ends after its read.
        await wait_until(lambda: "default" not in hub.readers(), "default's reader ended")
        assert hub.readers() == {"other": 1}
        second.close()
        await wait_until(lambda: hub.readers() == {}, "every reader ended")
        again = await open_feed(api)
        await api.ingest("s")
        assert (await again.event()).type == "session.created"


@pytest.mark.real
@pytest.mark.parametrize("redis_client", ["real"], indirect=True)
async def test_many_subscribers_share_one_blocking_read(
    api: Api, redis_client: RedisClient
) -> None:
    subscribers, writes = 50, 4
    feeds = [await open_feed(api) for _ in range(subscribers)]
    assert api.client.app[FEED].readers() == {"default": subscribers}
    await until_blocked_in_xread(redis_client)
    before = await xread_calls(redis_client)
    for n in range(writes):
        await api.ingest("s", id=f"m{n}")
        for feed in feeds:
            assert (await feed.event()).data["message"]["id"] == f"m{n}"
        assert await xread_blocked_clients(redis_client) <= 1
    calls = await xread_calls(redis_client) - before
    # One read per batch (a write or more, and one per idle second), not one per
    # subscriber and write.
    assert 1 <= calls < subscribers, calls
    for feed in feeds:
        feed.close()


async def not_reading(api: Api) -> tuple[socket.socket, bytes]:
    """A client that asks for the stream, then never reads a byte more than its headers
    (a small receive buffer so that its socket fills soon); its socket and the head."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", api.client.port))
    request = (
        f"GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {api.tokens['admin']}\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    head = b""
    async with asyncio.timeout(GUARD):
        while b"\r\n\r\n" not in head:
            head += await loop.sock_recv(sock, 1)
    assert head.startswith(b"HTTP/1.1 200")
    return sock, head


async def test_a_client_that_does_not_read_is_dropped_with_its_queue_bounded(
    api: Api,
) -> None:
    hub = api.client.app[FEED]
    healthy = await open_feed(api)
    sock, head = await not_reading(api)
    loop = asyncio.get_running_loop()
    await wait_until(lambda: hub.readers().get("default") == 2, "both subscribed")
    content = "z" * 32_000
    frame_bytes = 0
    written = 0
    try:
        for n in range(400):
            await api.ingest("big", id=f"m{n}", content=content)
            event = await healthy.event()
            assert event.data["message"]["id"] == f"m{n}"
            written += 1
            frame_bytes = max(frame_bytes, len(orjson.dumps(event.data)) + 100)
            held = [s.buffered for s in hub.subscribers("default")]
            # Each event reached every subscriber alone, after the one before was taken
            # by the healthy client: none ever holds more than its bound and one event.
            assert all(size <= QUEUE_BYTES + frame_bytes for size in held), held
            if len(held) == 1:
                break
        assert hub.readers() == {"default": 1}, "the client that does not read was dropped"
        # It got at most what its socket and bounded queue took before that.
        assert written * len(content) > QUEUE_BYTES
        received = len(head)
        async with asyncio.timeout(GUARD):
            with contextlib.suppress(ConnectionError):
                while chunk := await loop.sock_recv(sock, 65536):
                    received += len(chunk)
        assert received < written * len(content)
    finally:
        sock.close()
    # It resumes by its last event id (here: from the start) and gets everything.
    resumed = await open_feed(api, since="0")
    assert [e.id for e in await resumed.take(written)] == await stream_ids(api)


async def test_a_client_that_stops_reading_is_dropped_far_below_its_bound(
    redis_client: RedisClient, settings: Settings, tokens: Tokens
) -> None:
    """Within about client_timeout, by the kernel (aiohttp-sse's TCP_USER_TIMEOUT, where
    there is one) or by the hub (the next test), whichever comes first."""
    async with serving(redis_client, settings, tokens, client_timeout=0.5) as api:
        hub = api.client.app[FEED]
        healthy = await open_feed(api)
        sock, _ = await not_reading(api)
        try:
            await wait_until(lambda: hub.readers().get("default") == 2, "both subscribed")
            for n in range(8):
                await api.ingest("big", id=f"m{n}", content="z" * 32_000)
                await healthy.event()
            await asyncio.sleep(0.6)
            for n in range(int(GUARD / 0.1)):
                if hub.readers() == {"default": 1}:
                    break
                await api.ingest("big", id=f"late{n}")
                await healthy.event()
                await asyncio.sleep(0.1)
            assert hub.readers() == {"default": 1}, "the client that stopped reading was dropped"
        finally:
            sock.close()


class Unread(asyncio.Transport):
    """A live connection whose client takes nothing, unless told to."""

    def __init__(self) -> None:
        super().__init__()
        self.held = 0
        self.aborted = False

    def write(self, data: Any) -> None:
        self.held += len(data)

    def get_write_buffer_size(self) -> int:
        return self.held

    def is_closing(self) -> bool:
        return self.aborted

    def abort(self) -> None:
        self.aborted = True


async def test_the_hub_drops_a_live_client_that_takes_nothing_for_stall_after(
    store: SessionStore,
) -> None:
    stall_after = 0.2
    hub = FeedHub(store, stall_after=stall_after, max_bytes=1 << 16)
    batch = Batch([LiveEvent.of(ChangeEvent("1-0", "session.updated", "s", "web", b"{}"))])
    connections: list[Unread] = []
    subscribers: list[Subscriber] = []
    try:
        for _ in range(3):
            connection = Unread()
            subscriber = await hub.subscribe("default", on_behind=connection.abort)
            subscriber.go_live(connection, chunked=True)
            connections.append(connection)
            subscribers.append(subscriber)
        reading, stalled, flooded = subscribers
        # Each write is a chunk of a chunked body: its frames and their framing.
        assert all(s.offer(batch) for s in subscribers)
        assert connections[0].held == len(b"%x\r\n" % len(batch.frames)) + len(batch.frames) + 2
        await asyncio.sleep(stall_after * 1.5)
        connections[0].held //= 2  # its client took some
        assert reading.offer(batch) and reading.ended is None
        assert not stalled.offer(batch)
        assert stalled.ended is Ended.BEHIND and connections[1].aborted
        # Past max_bytes, however soon.
        connections[2].held = (1 << 16) - 10
        assert reading.offer(batch) and reading.ended is None
        assert not flooded.offer(batch)
        assert flooded.ended is Ended.BEHIND and connections[2].aborted
        # All of it taken: the clock starts again.
        connections[0].held = 0
        assert reading.offer(batch)
        await asyncio.sleep(stall_after / 4)
        assert reading.offer(batch) and reading.ended is None
    finally:
        for subscriber in subscribers:
            hub.unsubscribe(subscriber)
        await hub.aclose()


async def test_shutdown_ends_open_streams_cleanly(
    redis_client: RedisClient, settings: Settings, tokens: Tokens
) -> None:
    async with serving(redis_client, settings, tokens) as api:
        feeds = [
            await open_feed(api),
            await open_feed(api, since="0"),
            await open_feed(api, token="other"),
        ]
        await api.ingest("s", id="m1")
        assert (await feeds[0].event()).data["message"]["id"] == "m1"
        closing = asyncio.create_task(api.client.server.close())
        ended = [await feed.rest() for feed in feeds]
        async with asyncio.timeout(GUARD):
            await closing
        # What was due came first; every stream then said why it ended, and ended.
        assert [[e.data["message"]["id"] for e in events] for events in ended] == [[], ["m1"], []]
        for feed in feeds:
            assert feed.comments[-1] == "the service is shutting down; resume by Last-Event-ID"
            assert feed.response.content.at_eof()


@pytest.mark.real
async def test_sigterm_ends_open_streams_and_the_process(
    redis_server: RedisProcess, tmp_path: Path
) -> None:
    flushing = Redis.from_url(redis_server.url)
    await flushing.flushall()
    await flushing.aclose()
    env = {**token_env(), "CHATSESSIONS_REDIS_URL": redis_server.url}
    service = ServeProcess(tmp_path, env=env).start()
    headers = {"Authorization": f"Bearer {TEST_TOKEN}"}
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{service.url}/api/events", headers=headers) as response,
        ):
            assert response.status == 200
            async with session.post(
                f"{service.url}/api/sessions/s/messages",
                headers=headers,
                json={"role": "user", "content": "hi", "channel": "web"},
            ) as written:
                assert written.status == 201
            feed = Feed(response)
            assert (await feed.event()).type == "session.created"
            os.kill(service.pid, signal.SIGTERM)
            assert await feed.rest() == []
            assert feed.comments[-1].startswith("the service is shutting down")
        assert await asyncio.to_thread(service.wait_exit, GUARD) == 0
    finally:
        service.stop()


@pytest.mark.real
async def test_a_redis_outage_is_bridged_then_ends_streams_which_resume(
    fault_proxy: FaultProxy, settings: Settings, tokens: Tokens
) -> None:
    client = Redis.from_url(fault_proxy.url)
    try:
        async with serving(client, settings, tokens) as api:
            feed = await open_feed(api)
            await api.ingest("s", id="m1")
            assert (await feed.event()).data["message"]["id"] == "m1"
            # A short refusal is tried again inside the hub: the stream goes on.
            fault_proxy.refuse(LOADING, named("XREAD"), times=2)
            await api.ingest("s", id="m2")
            assert (await feed.event()).data["message"]["id"] == "m2"
            last = (await stream_ids(api))[-1]
            # A long one ends the stream, cleanly and saying so.
            fault_proxy.refuse(LOADING, named("XREAD"))
            assert await feed.rest() == []
            assert feed.comments[-1].startswith("Redis cannot serve the feed now")
            assert len(RETRY_DELAYS) >= 3
            await api.ingest("s", id="m3")
            # While Redis refuses everything, a new stream is a 503 before any byte.
            fault_proxy.refuse(LOADING)
            status, body = await api.call("GET", "/api/events", headers={"Last-Event-ID": last})
            assert status == 503 and "loading" in body["detail"].lower()
            fault_proxy.clear()
            resumed = await open_feed(api, last_event_id=last)
            assert (await resumed.event()).data["message"]["id"] == "m3"
            await api.ingest("s", id="m4")
            assert (await resumed.event()).data["message"]["id"] == "m4"
    finally:
        await client.aclose()


DOCS = Path(__file__).resolve().parent.parent / "docs" / "api.md"
DOCUMENTED_ORIGIN = "http://localhost:8000"


def documented(language: str, starting: str) -> str:
    """The one block of docs/api.md in ``language`` that starts with ``starting``."""
    found: list[str] = [
        block
        for block in re.findall(rf"```{language}\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
        if block.startswith(starting)
    ]
    assert len(found) == 1, found
    return found[0]


async def read_line(stream: asyncio.StreamReader) -> str:
    async with asyncio.timeout(GUARD):
        line = await stream.readline()
    assert line, "the process ended"
    return line.decode().rstrip("\n")


async def ingest_over_http(base: str, token: str, session_id: str, message_id: str) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base}/api/sessions/{session_id}/messages",
            headers={"Authorization": f"Bearer {token}"},
            json={"role": "user", "content": "hi", "channel": "web", "id": message_id},
        ) as answer,
    ):
        assert answer.status == 201, await answer.text()


@pytest.mark.real
async def test_the_documented_curl_line_streams_events(tmp_path: Path) -> None:
    """As `make serve` runs it: the embedded Redis and the token it prints."""
    line = documented("bash", "curl -N ").strip()
    assert "\n" not in line
    service = await asyncio.to_thread(ServeProcess(tmp_path).start)
    curl = None
    try:
        [token] = generated_tokens(service.log())
        await ingest_over_http(service.url, token, "before", "b1")
        curl = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            line.replace(DOCUMENTED_ORIGIN, service.url),
            env={**os.environ, "TOKEN": token},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        assert curl.stdout is not None
        # since=0: the event written before comes first, then the live one.
        event_id, event, data, blank = [await read_line(curl.stdout) for _ in range(4)]
        assert event_id.startswith("id: ") and event == "event: session.created"
        assert data.startswith("data: ") and blank == ""
        assert orjson.loads(data.removeprefix("data: "))["message"]["id"] == "b1"
        await ingest_over_http(service.url, token, "after", "a1")
        while (text := await read_line(curl.stdout)) != "event: session.created":
            assert text == "" or text.startswith(("id: ", ": ping")), text
        data = orjson.loads((await read_line(curl.stdout)).removeprefix("data: "))
        assert data["session"]["id"] == "after"
    finally:
        if curl is not None and curl.returncode is None:
            os.killpg(curl.pid, signal.SIGTERM)
            await curl.wait()
        service.stop()


@pytest.mark.real
async def test_the_documented_javascript_example_resumes_across_a_restart(
    redis_server: RedisProcess, tmp_path: Path
) -> None:
    """The example follows the feed, the service stops (its stream ends) while events are
    written straight into the store, and starts again: the example prints every event
    after its first one exactly once, in order."""
    node = shutil.which("node")
    assert node, "node runs the documented example"
    example = documented("js", "const url = ")
    flushing = Redis.from_url(redis_server.url)
    await flushing.flushall()
    env = {**token_env(), "CHATSESSIONS_REDIS_URL": redis_server.url}
    service = await asyncio.to_thread(ServeProcess(tmp_path / "first", env=env).start)
    follower = await asyncio.create_subprocess_exec(
        node,
        "--input-type=module",
        "-e",
        example.replace(DOCUMENTED_ORIGIN, service.url),
        env={**os.environ, "TOKEN": TEST_TOKEN},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert follower.stdout is not None
    store = SessionStore(flushing, active_window_ms=900_000)
    try:
        # The example starts with new events: write until it has printed one.
        printed: list[str] = []
        for n in range(int(GUARD / 0.2)):
            await ingest_over_http(service.url, TEST_TOKEN, "s", f"warm{n}")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.2):
                    printed.append(await read_line(follower.stdout))
                    break
        assert printed, "the example printed no event"
        first_id = printed[0].split()[0]
        await ingest_over_http(service.url, TEST_TOKEN, "s", "live")
        await asyncio.to_thread(service.stop)
        for n in range(3):
            message = MessageIn(f"down{n}", "user", "hi", now_ms(), None, "web")
            await store.add_message("default", "s", message, now=now_ms())
        restarted = ServeProcess(tmp_path / "second", env=env, port=service.port)
        service = await asyncio.to_thread(restarted.start)
        await ingest_over_http(service.url, TEST_TOKEN, "s", "back")
        ids = await stream_ids_of(store)
        expected = ids[ids.index(first_id) :]
        while len(printed) < len(expected):
            printed.append(await read_line(follower.stdout))
        assert [line.split()[0] for line in printed] == expected
        assert all(line.split()[1:] == ["session.updated", "s"] for line in printed[1:])
    finally:
        if follower.returncode is None:
            follower.kill()
            await follower.wait()
        await asyncio.to_thread(service.stop)
        await store.aclose()
        await flushing.aclose()


async def stream_ids_of(store: SessionStore) -> list[str]:
    return await all_stream_ids(store)


OTHER_TOKEN = "cs_test_token_of_namespace_other_0123456789"


@pytest.mark.real
@pytest.mark.slow
async def test_the_feed_on_a_cluster_with_two_workers(tmp_path: Path) -> None:
    """Streams of two namespaces (each on its own slot) through serve --workers 2: every
    stream gets every event of its namespace, in order, whichever worker took the write,
    and streams that reconnect mid-way (to either worker) resume with nothing missed or
    repeated."""
    cluster = await asyncio.to_thread(ClusterProcess(tmp_path / "cluster", masters=3).start)
    tokens = {"default": TEST_TOKEN, "other": OTHER_TOKEN}
    entries = [
        {
            "name": namespace,
            "sha256": hashlib.sha256(token.encode()).hexdigest(),
            "scopes": ["read", "write"],
            "namespace": namespace,
        }
        for namespace, token in tokens.items()
    ]
    env = {"CHATSESSIONS_TOKENS": orjson.dumps(entries).decode()}
    env["CHATSESSIONS_REDIS_URL"] = cluster.url
    service = ServeProcess(tmp_path / "serve", env=env, args=("--workers", "2"))
    try:
        await asyncio.to_thread(service.start)
        assert len(await asyncio.to_thread(service.worker_pids, 2)) == 2
        async with aiohttp.ClientSession() as session:

            async def follow(namespace: str, last: str | None = None) -> Feed:
                headers = {"Authorization": f"Bearer {tokens[namespace]}"}
                if last is not None:
                    headers["Last-Event-ID"] = last
                # A connection of its own each time: the port spreads them over the workers.
                response = await session.get(
                    f"{service.url}/api/events",
                    headers={**headers, "Connection": "close"},
                    params={"since": "0"},
                )
                assert response.status == 200, await response.text()
                return Feed(response)

            feeds = {ns: [await follow(ns) for _ in range(4)] for ns in tokens}
            seen: dict[tuple[str, int], list[str]] = {
                (ns, n): [] for ns in tokens for n in range(4)
            }
            writes = 30
            for n in range(writes):
                for namespace, token in tokens.items():
                    await ingest_over_http(service.url, token, f"{namespace}-{n % 3}", f"m{n}")
                for namespace in tokens:
                    for k, feed in enumerate(feeds[namespace]):
                        event = await feed.event()
                        seen[(namespace, k)].append(event.data["message"]["id"])
                        if n % 7 == k:
                            feed.close()
                            feeds[namespace][k] = await follow(namespace, event.id)
            for feed_list in feeds.values():
                for feed in feed_list:
                    feed.close()
        assert all(ids == [f"m{n}" for n in range(writes)] for ids in seen.values()), seen
    finally:
        await asyncio.to_thread(service.stop)
        cluster.stop()
