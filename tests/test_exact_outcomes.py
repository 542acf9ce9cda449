"""A write answers what it did, even when Redis's reply to it is lost (SPEC §3 "Outcomes
are exact", issue 19 item 3).

The fault proxy forwards the write, lets it run, then drops Redis's reply and closes
the service's connection: the service's own retry must recognise its first attempt.
It answers what the write did, or, where it cannot know, 503 with a detail saying the
outcome is unknown and that repeating the request with the same ids is safe. It never
answers 409 for a session it created itself, 404 for one it deleted itself, or
"duplicate" for a message it stored itself, and its metrics count what was stored.
Each test first sends the same kind of write once, so that Redis holds the write's
script and the dropped reply is the one of a write that ran.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from fault_proxy import FaultProxy, named
from redis.asyncio import Redis

from service.app import create_app
from service.settings import Settings
from service.store import InvariantChecker

from conftest import Api, Tokens

pytestmark = pytest.mark.real

# The commands that carry a write: its script, by hash or by text.
WRITES = named("EVALSHA", "EVAL", "FCALL")
MESSAGE = {"role": "user", "content": "hello", "channel": "web"}


@pytest.fixture
async def api(fault_proxy: FaultProxy, settings: Settings, tokens: Tokens) -> AsyncIterator[Api]:
    """The service on the proxy, opening Redis as ``serve`` does."""
    app = create_app(replace(settings, redis_url=fault_proxy.url))
    async with TestClient(TestServer(app)) as client:
        yield Api(client, tokens)


def outcome_unknown(status: int, body: Any) -> bool:
    """The one answer allowed besides the write's own: 503 saying it cannot know."""
    return status == 503 and "outcome is unknown" in body["detail"]


async def stored_messages(fault_proxy: FaultProxy, session_id: str) -> list[str]:
    """The ids of a session's stored messages, read from Redis itself."""
    direct = Redis(port=fault_proxy.upstream_port)
    try:
        stored = await direct.lrange(f"cs:{{default}}:messages:{session_id}", 0, -1)
    finally:
        await direct.aclose()
    # A stored message is the JSON array [id, role, content, time, metadata].
    return [orjson.loads(message)[0] for message in stored]


async def total_sessions(api: Api) -> int:
    status, body = await api.call("GET", "/api/sessions")
    assert status == 200, body
    total: int = body["total"]
    return total


@pytest.mark.parametrize("with_id", [True, False], ids=["with-id", "generated-id"])
async def test_a_create_whose_reply_was_lost_is_never_answered_409(
    api: Api, fault_proxy: FaultProxy, with_id: bool
) -> None:
    status, body = await api.call("POST", "/api/sessions", json={"channel": "web"})
    assert status == 201, body
    dropped = fault_proxy.drop_reply(WRITES)
    request: dict[str, Any] = {"channel": "web", "title": "Lost reply"}
    if with_id:
        request["id"] = "lost-reply"
    status, body = await api.call("POST", "/api/sessions", json=request)
    assert dropped.fired == 1, "the reply of the create was not dropped"
    assert status == 201 or outcome_unknown(status, body), (status, body)
    # The create ran once: one session more, never two (a retry under a new id).
    assert await total_sessions(api) == 2
    if status == 201:
        if with_id:
            assert body["id"] == "lost-reply"
        # The id answered is the session created.
        status, found = await api.call("GET", f"/api/sessions/{body['id']}")
        assert status == 200, found
        assert found["title"] == "Lost reply"
    if with_id:
        status, found = await api.call("GET", "/api/sessions/lost-reply")
        assert status == 200, found


async def test_a_delete_whose_reply_was_lost_is_never_answered_404(
    api: Api, fault_proxy: FaultProxy
) -> None:
    for session_id in ("first", "doomed", "kept"):
        status, body = await api.call(
            "POST", "/api/sessions", json={"id": session_id, "channel": "web"}
        )
        assert status == 201, body
    status, body = await api.call("DELETE", "/api/sessions/first")
    assert status == 200, body
    dropped = fault_proxy.drop_reply(WRITES)
    status, body = await api.call("DELETE", "/api/sessions/doomed")
    assert dropped.fired == 1, "the reply of the delete was not dropped"
    assert status == 200 or outcome_unknown(status, body), (status, body)
    status, body = await api.call("GET", "/api/sessions/doomed")
    assert status == 404, body
    assert await total_sessions(api) == 1


@pytest.mark.parametrize("session", ["existing", "new"])
async def test_a_message_whose_reply_was_lost_is_never_answered_as_a_duplicate(
    api: Api, fault_proxy: FaultProxy, session: str
) -> None:
    await api.ingest("existing", id="first")
    dropped = fault_proxy.drop_reply(WRITES)
    status, body = await api.call(
        "POST", f"/api/sessions/{session}/messages", json={**MESSAGE, "id": "lost-reply"}
    )
    assert dropped.fired == 1, "the reply of the ingest was not dropped"
    assert status == 201 or outcome_unknown(status, body), (status, body)
    expected = ["first", "lost-reply"] if session == "existing" else ["lost-reply"]
    assert await stored_messages(fault_proxy, session) == expected
    if status == 201:
        assert body["message"]["id"] == "lost-reply"
        assert body["session"]["message_count"] == len(expected)


async def test_a_batch_whose_replies_were_lost_counts_no_duplicates(
    api: Api, fault_proxy: FaultProxy
) -> None:
    await api.call(
        "POST", "/api/messages", json={"messages": [{**MESSAGE, "session_id": "b0", "id": "x"}]}
    )
    # More messages than one script call takes: the calls go pipelined in one write, and
    # the connection closes after the first one's reply is dropped, the others ran too.
    items = [{**MESSAGE, "session_id": f"b{n % 3}", "id": f"batch-{n}"} for n in range(250)]
    dropped = fault_proxy.drop_reply(WRITES)
    status, body = await api.call("POST", "/api/messages", json={"messages": items})
    assert dropped.fired == 1, "the reply of the batch was not dropped"
    assert status == 200 or outcome_unknown(status, body), (status, body)
    if status == 200:
        assert (body["created"], body["duplicates"], body["failed"]) == (250, 0, 0)
        assert {result["status"] for result in body["results"]} == {201}
        # Each answer is the message's own: the session's count just after it was stored.
        for n in range(3):
            counts = [r["message_count"] for r in body["results"] if r["session_id"] == f"b{n}"]
            before = 1 if n == 0 else 0
            assert counts == list(range(before + 1, before + 1 + len(counts))), n
    for n in range(3):
        ids = await stored_messages(fault_proxy, f"b{n}")
        expected = [f"batch-{k}" for k in range(n, 250, 3)]
        assert ids == (["x", *expected] if n == 0 else expected)


def counter(metrics_text: str, name: str) -> float:
    found = re.search(rf"^{name} (\S+)$", metrics_text, re.MULTILINE)
    assert found, name
    return float(found.group(1))


async def test_metrics_count_what_was_stored_when_replies_are_lost(
    api: Api, fault_proxy: FaultProxy
) -> None:
    await api.ingest("m0", id="warm")
    await api.call(
        "POST", "/api/messages", json={"messages": [{**MESSAGE, "session_id": "m0", "id": "w2"}]}
    )
    for n in range(3):
        dropped = fault_proxy.drop_reply(WRITES)
        single = {**MESSAGE, "id": f"single-{n}"}
        await api.call("POST", f"/api/sessions/m{n % 2}/messages", json=single)
        assert dropped.fired == 1
        dropped = fault_proxy.drop_reply(WRITES)
        batch = [{**MESSAGE, "session_id": f"m{k % 3}", "id": f"batch-{n}-{k}"} for k in range(5)]
        await api.call("POST", "/api/messages", json={"messages": batch})
        assert dropped.fired == 1
    # Repeats answer "seen before" and store nothing: they must not count.
    await api.ingest("m0", id="warm")
    direct = Redis(port=fault_proxy.upstream_port)
    try:
        report = await InvariantChecker(direct).check("default")
    finally:
        await direct.aclose()
    assert report.ok, report.problems
    assert report.messages == 2 + 3 + 3 * 5
    async with api.client.get("/metrics") as response:
        text = await response.text()
    assert counter(text, "chatsessions_messages_ingested_total") == report.messages
    assert counter(text, "chatsessions_sessions_created_total") == report.sessions


async def test_when_the_retry_is_lost_too_the_answer_says_the_outcome_is_unknown(
    api: Api, fault_proxy: FaultProxy
) -> None:
    await api.ingest("s1", id="first")
    # The first try's reply and the retry's: the service cannot know what happened.
    dropped = fault_proxy.drop_reply(WRITES, times=2)
    request = {**MESSAGE, "id": "twice-lost"}
    status, body = await api.call("POST", "/api/sessions/s1/messages", json=request)
    assert dropped.fired >= 1
    if status != 201:
        assert outcome_unknown(status, body), (status, body)
        assert "same id" in body["detail"], body
    fault_proxy.clear()
    # Repeating it with the same id is safe: stored once, whatever was answered before.
    status, body = await api.call("POST", "/api/sessions/s1/messages", json=request)
    assert status in (200, 201), body
    assert await stored_messages(fault_proxy, "s1") == ["first", "twice-lost"]


async def test_a_message_without_an_id_is_stored_at_most_once_by_the_service(
    api: Api, fault_proxy: FaultProxy
) -> None:
    """The service gives a message sent without an id an id of its own, and its retry
    uses that same id: the service never stores it twice. When it answers that the
    outcome is unknown, the client does not know that id, so sending the message again
    would store a second copy: that is why the answer asks for ids, and bots should
    send their own (the channel's message id). That second copy is the client's, and is
    not asserted here."""
    await api.ingest("s1", id="first")
    dropped = fault_proxy.drop_reply(WRITES, times=2)
    status, body = await api.call("POST", "/api/sessions/s1/messages", json=MESSAGE)
    assert dropped.fired >= 1
    assert status == 201 or outcome_unknown(status, body), (status, body)
    stored = await stored_messages(fault_proxy, "s1")
    assert len(stored) == 2 and stored[0] == "first"
    if status == 201:
        assert body["message"]["id"] == stored[1]
