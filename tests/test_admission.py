"""Per-namespace admission of expensive requests (issue 19 item 1): beyond
``expensive_concurrency`` of one namespace's searches, histories, exports and batches at
once in a worker, WAITING_PER_SLOT times as many more wait for a slot and the next
answers 429 with Retry-After, while another namespace's requests go on."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request
from fault_proxy import FaultProxy, both, named, touching

from service.admission import WAITING_PER_SLOT, Admission
from service.app import create_app
from service.appkeys import PRINCIPAL
from service.auth import Principal
from service.errors import ApiError
from service.settings import SCOPES, Settings

from conftest import Tokens

# Bounds on the loops that wait for requests to reach a state: never a speed assertion.
WAIT_STEPS = 2000
WAIT_PAUSE = 0.01
HANG_GUARD = 30.0


def request_of(namespace: str, label: str = "") -> web.Request:
    request = make_mocked_request("GET", "/api/sessions/search", headers={"X-Label": label})
    request[PRINCIPAL] = Principal("t", frozenset(SCOPES), namespace)
    return request


async def settle() -> None:
    """Let every task started so far run up to where it waits."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_namespace_runs_its_slots_queues_more_and_refuses_beyond() -> None:
    gate = Admission(2, retry_after=3, wait=HANG_GUARD)
    queue = 2 * WAITING_PER_SLOT
    release = asyncio.Event()
    started: list[str] = []

    async def slow(request: web.Request) -> web.StreamResponse:
        started.append(request.headers["X-Label"])
        await release.wait()
        return web.Response(text="done")

    admitted = gate.admitted(slow)
    b = [asyncio.ensure_future(admitted(request_of("b", str(n)))) for n in range(2 + queue)]
    await settle()
    assert (gate.running("b"), gate.waiting("b")) == (2, queue)
    assert started == ["0", "1"]
    with pytest.raises(ApiError) as refused:
        await admitted(request_of("b"))
    assert refused.value.status == 429
    assert refused.value.headers == {"Retry-After": "3"}
    assert "Retry-After" in refused.value.detail
    # Another namespace is not held back by b's requests.
    a = asyncio.ensure_future(admitted(request_of("a", "a")))
    await settle()
    assert started == ["0", "1", "a"]
    release.set()
    for response in await asyncio.gather(*b, a):
        assert response.status == 200
    # b's waiters ran in the order they came, each on a slot given back.
    assert started == ["0", "1", "a", *(str(n) for n in range(2, 2 + queue))]
    assert (gate.running("a"), gate.running("b"), gate.waiting("b")) == (0, 0, 0)


async def test_a_wait_that_ends_gives_up_its_place() -> None:
    # A short wait only bounds this test; nothing here is timed.
    gate = Admission(1, retry_after=1, wait=0.05)
    release = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.Response(text="done")

    async def failing(request: web.Request) -> web.StreamResponse:
        raise RuntimeError("the handler failed")

    admitted = gate.admitted(slow)
    first = asyncio.ensure_future(admitted(request_of("b")))
    await settle()
    # Waited its longest without a slot freeing: refused, and out of the queue.
    with pytest.raises(ApiError) as refused:
        await admitted(request_of("b"))
    assert refused.value.status == 429
    assert gate.waiting("b") == 0
    # A waiter whose request is cancelled (the client went away) leaves the queue too,
    # and the slot given back is not handed to it.
    cancelled = asyncio.ensure_future(admitted(request_of("b")))
    await settle()
    assert gate.waiting("b") == 1
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert gate.waiting("b") == 0
    release.set()
    assert (await first).status == 200
    assert gate.running("b") == 0
    # A handler that fails gives its slot back, and so does one cancelled while running.
    with pytest.raises(RuntimeError):
        await gate.admitted(failing)(request_of("b"))
    release.clear()
    running = asyncio.ensure_future(admitted(request_of("b")))
    await settle()
    assert gate.running("b") == 1
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert gate.running("b") == 0


def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        Admission(0, retry_after=1, wait=1.0)


MESSAGE = {"role": "user", "content": "hello world", "channel": "web"}
# Namespace a is the admin token's (default), b the other token's.
A, B = "admin", "other"


@pytest.fixture
async def client(
    fault_proxy: FaultProxy, settings: Settings, tokens: Tokens
) -> AsyncIterator[TestClient[Any, Any]]:
    # Replies held for as long as the test needs must not trip the Redis deadline.
    served = replace(settings, redis_url=fault_proxy.url, redis_timeout=HANG_GUARD)
    assert served.expensive_concurrency == 2
    async with TestClient(TestServer(create_app(served))) as opened:
        yield opened


def expensive(n: int) -> tuple[str, str, Any]:
    """The n-th of the expensive routes, in turn: search, history, export, batch."""
    match n % 4:
        case 0:
            return "GET", "/api/sessions/search?q=hello", None
        case 1:
            return "GET", "/api/sessions/s1/messages?limit=500", None
        case 2:
            return "GET", "/api/sessions/s1/export", None
        case _:
            batch = [{**MESSAGE, "session_id": f"batch{n}", "id": f"m{n}"}]
            return "POST", "/api/messages", {"messages": batch}


async def send(
    client: TestClient[Any, Any], tokens: Tokens, who: str, method: str, path: str, body: Any
) -> tuple[int, str, Any]:
    """Status, Retry-After and the body (JSON when it is JSON)."""
    headers = tokens.header(who)

    async def once() -> tuple[int, str, Any]:
        async with client.request(method, path, headers=headers, json=body) as response:
            raw = await response.read()
            parsed = orjson.loads(raw) if response.content_type == "application/json" else raw
            return response.status, response.headers.get("Retry-After", ""), parsed

    return await asyncio.wait_for(once(), HANG_GUARD)


async def wait_until(condition: Any, what: str) -> None:
    for _ in range(WAIT_STEPS):
        if condition():
            return
        await asyncio.sleep(WAIT_PAUSE)
    raise AssertionError(f"never happened: {what}")


@pytest.mark.real
async def test_a_flooding_namespace_is_refused_beyond_its_slots_and_others_go_on(
    client: TestClient[Any, Any], fault_proxy: FaultProxy, tokens: Tokens
) -> None:
    for who in (A, B):
        status, _, body = await send(
            client, tokens, who, "POST", "/api/sessions/s1/messages", MESSAGE
        )
        assert status == 201, body
        # Each route once, so that Redis holds every script before replies are held.
        for n in range(4):
            status, _, body = await send(client, tokens, who, *expensive(n))
            assert status == 200, body

    # b's requests are slow: Redis's replies to them wait until released.
    held = fault_proxy.hold(touching("{other}:"))
    flood = [asyncio.create_task(send(client, tokens, B, *expensive(n))) for n in range(16)]
    await wait_until(
        lambda: sum(task.done() for task in flood) == 6 and held.fired == 2,
        "6 of b's 16 requests refused while 2 wait on Redis and 8 for a slot",
    )
    for task in flood:
        if task.done():
            status, retry_after, body = task.result()
            assert status == 429, body
            assert retry_after == "1"
            assert "Retry-After" in body["detail"]

    # While b holds all its slots, a's expensive requests are admitted (they reach Redis)
    # and its list pages go on; their replies queue behind b's on the worker's one
    # Redis connection, so they are answered once b's are.
    reached = fault_proxy.delay(0, both(named("EVALSHA"), touching("{default}:")))
    theirs = [asyncio.create_task(send(client, tokens, A, *expensive(n))) for n in range(4)]
    pages = [
        asyncio.create_task(send(client, tokens, A, "GET", f"/api/sessions?limit={n}", None))
        for n in range(1, 5)
    ]
    await wait_until(lambda: reached.fired >= 4, "a's four expensive requests reach Redis")
    # b's ten are still running or waiting all along: a was admitted beside them.
    assert sum(task.done() for task in flood) == 6
    fault_proxy.release()
    for status, _, body in await asyncio.gather(*theirs, *pages):
        assert status == 200, body
    statuses = sorted([(await task)[0] for task in flood])
    # The eight that waited ran once slots were given back.
    assert statuses == [200] * 10 + [429] * 6
    # The slots came back: b may run its requests again.
    again = await asyncio.gather(*(send(client, tokens, B, *expensive(n)) for n in range(4)))
    assert [status for status, _, _ in again] == [200] * 4
