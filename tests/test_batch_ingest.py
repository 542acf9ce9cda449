"""Batch ingest: one pipelined round trip, one result per item, bad items never block."""

from __future__ import annotations

from typing import Any

import pytest

from service.models import MessageIn
from service.store import ChannelRequired, SessionStore

from conftest import Api

NOW = 1_705_315_500_000


def item(session_id: str, message_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "session_id": session_id,
        "channel": "telegram",
        "role": "user",
        "content": f"text of {message_id}",
        "id": message_id,
        **extra,
    }


async def test_mixed_batch_answers_each_item_in_order(api: Api) -> None:
    await api.ingest("s1", id="old", channel="telegram")
    batch = [
        item("s1", "a"),
        item("s1", "old"),  # seen before: 200, changes nothing
        item("s2", "b", role="robot"),  # bad role: 422
        item("s2", "c", timestamp="2024-01-15T10:30:00Z"),
        {"session_id": "s3", "role": "user", "content": "no channel"},  # unknown, no channel
        "not an object",
        item("", "d"),
        item("s1", "a"),  # repeated inside the same batch: the second is a duplicate
        item("s2", "e", content="x" * 70_000),
    ]
    status, body = await api.call("POST", "/api/messages", json={"messages": batch})
    assert status == 200
    statuses = [r["status"] for r in body["results"]]
    assert statuses == [201, 200, 422, 201, 422, 422, 422, 200, 422]
    assert (body["created"], body["duplicates"], body["failed"]) == (2, 2, 5)
    results = body["results"]
    assert results[0]["message"]["id"] == "a" and results[0]["session_id"] == "s1"
    assert results[1]["message"]["content"] == "hello"
    assert "role must be one of" in results[2]["detail"]
    assert results[4]["detail"].startswith("channel is required")
    assert results[5]["detail"] == "Each message must be a JSON object."
    assert "session_id must be 1 to 256" in results[6]["detail"]
    assert "the limit is 65536" in results[8]["detail"]
    status, s1 = await api.call("GET", "/api/sessions/s1")
    assert s1["message_count"] == 2
    status, s2 = await api.call("GET", "/api/sessions/s2")
    assert (s2["message_count"], s2["updated_at"]) == (1, "2024-01-15T10:30:00Z")
    assert (await api.call("GET", "/api/sessions/s3"))[0] == 404


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "messages must be a non-empty list"),
        ({"messages": []}, "messages must be a non-empty list"),
        ({"messages": {"a": 1}}, "messages must be a non-empty list"),
        ({"messages": [item("s", str(n)) for n in range(1001)]}, "at most 1000"),
    ],
)
async def test_bad_batches_are_422(api: Api, body: dict[str, Any], fragment: str) -> None:
    status, answer = await api.call("POST", "/api/messages", json=body)
    assert status == 422
    assert fragment in answer["detail"]


async def test_full_batch_of_1000_then_replayed(api: Api) -> None:
    batch = [item(f"s{n % 10}", f"m{n}") for n in range(1000)]
    status, body = await api.call("POST", "/api/messages", json={"messages": batch})
    assert (status, body["created"]) == (200, 1000)
    status, body = await api.call("POST", "/api/messages", json={"messages": batch})
    assert (body["created"], body["duplicates"]) == (0, 1000)
    status, listed = await api.call("GET", "/api/sessions")
    assert listed["total"] == 10
    assert {s["message_count"] for s in listed["sessions"]} == {100}


async def test_store_batch_survives_a_server_without_the_script(
    store: SessionStore, redis_client: Any
) -> None:
    await redis_client.script_flush()
    items = [("s1", MessageIn("m1", "user", "hi", NOW, None, "web"))]
    items.append(("s2", MessageIn("m2", "user", "hi", NOW, None, None)))
    results = await store.add_messages("default", items, now=NOW)
    assert not isinstance(results[0], Exception) and results[0].created
    assert isinstance(results[1], ChannelRequired)
    assert await store.add_messages("default", [], now=NOW) == []


async def test_batch_content_round_trips_byte_for_byte(api: Api) -> None:
    odd = [
        'quotes " and \\\\ backslashes \\n newline',
        "emoji 🤖🧪 and 日本語 and ünïcode",
        "nul \u0000 and tab \t and \u2028 separators",
        "",
        "x" * 60_000,
    ]
    batch = [
        item(
            "odd/ id:1", f"o{n}", content=content, metadata={"k": content[:50], "n": [1, 2.5, None]}
        )
        for n, content in enumerate(odd)
    ]
    status, body = await api.call("POST", "/api/messages", json={"messages": batch})
    assert status == 200 and body["created"] == len(odd)
    status, history = await api.call("GET", "/api/sessions/odd%2F%20id%3A1/messages?limit=10")
    assert [m["content"] for m in history["messages"]] == odd
    assert history["messages"][1]["metadata"] == {"k": odd[1][:50], "n": [1, 2.5, None]}
    status, session = await api.call("GET", "/api/sessions/odd%2F%20id%3A1")
    assert session["title"] == " ".join(odd[0].split())
