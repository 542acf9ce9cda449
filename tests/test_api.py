"""The HTTP API of the core: list, ingest, get, and every error status, fake and real."""

from __future__ import annotations

import os
from typing import Any

import pytest

from conftest import CHANNEL_IDS, Api, quote

ODD_IDS = [*CHANNEL_IDS, "100% done & a space", "emoji 🤖 and ünïcode", "a?b#c"]


async def list_ids(api: Api, query: str = "", token: str = "admin") -> list[str]:
    status, body = await api.call("GET", f"/api/sessions{query}", token=token)
    assert status == 200, body
    return [item["id"] for item in body["sessions"]]


async def test_seed_example_is_reproduced_field_for_field(api: Api) -> None:
    for n in range(41):
        await api.ingest(f"older_{n:02d}", timestamp=f"2024-01-{n % 14 + 1:02d}T08:00:00Z")
    contents = ["Python prime numbers"] + [f"follow-up {n}" for n in range(11)]
    minutes = [0, 5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 75]
    for n, (content, minute) in enumerate(zip(contents, minutes, strict=True)):
        hour, minute = divmod(30 + minute, 60)
        await api.ingest(
            "session_abc123",
            id=f"m{n}",
            role="user" if n % 2 == 0 else "assistant",
            content=content,
            timestamp=f"2024-01-15T{10 + hour:02d}:{minute:02d}:00Z",
        )
    status, body = await api.call("GET", "/api/sessions?limit=50")
    assert status == 200
    assert body["total"] == 42
    assert body["next_cursor"] is None
    assert body["sessions"][0] == {
        "id": "session_abc123",
        "title": "Python prime numbers",
        "created_at": "2024-01-15T10:30:00Z",
        "updated_at": "2024-01-15T11:45:00Z",
        "message_count": 12,
        "channel": "web",
        "pinned": False,
        "archived": False,
        "tags": [],
        "active": False,
    }
    assert list(body["sessions"][0]) == [
        "id",
        "title",
        "created_at",
        "updated_at",
        "message_count",
        "channel",
        "pinned",
        "archived",
        "tags",
        "active",
    ]


async def test_ingest_answers_201_then_200_for_the_same_id(api: Api) -> None:
    message = {"role": "user", "content": "hi", "channel": "telegram", "id": "tg-1234-99"}
    status, first = await api.call("POST", "/api/sessions/123/messages", json=message)
    assert status == 201
    assert first["message"]["id"] == "tg-1234-99"
    assert first["session"]["message_count"] == 1
    status, again = await api.call(
        "POST", "/api/sessions/123/messages", json={**message, "content": "other"}
    )
    assert status == 200
    assert again["message"] == first["message"]
    assert again["session"]["message_count"] == 1


async def test_ingest_answers_the_session_as_get_does(api: Api) -> None:
    created = {"id": "dm:1", "channel": "web", "metadata": {"plan": "pro", "seats": [1, 2]}}
    assert (await api.call("POST", "/api/sessions", json=created))[0] == 201
    answer = await api.ingest("dm:1", id="m1", content="hello there")
    status, stored = await api.call("GET", "/api/sessions/dm%3A1")
    assert status == 200
    assert answer["session"] == stored
    assert answer["session"]["metadata"] == {"plan": "pro", "seats": [1, 2]}
    repeat = await api.ingest("dm:1", id="m1", content="hello there")
    assert repeat["session"] == stored


async def test_message_without_id_gets_one(api: Api) -> None:
    body = await api.ingest("s1")
    assert body["message"]["id"].startswith("msg_")
    assert body["message"]["timestamp"].endswith("Z")


@pytest.mark.parametrize("session_id", ODD_IDS)
async def test_odd_ids_round_trip_through_the_url(api: Api, session_id: str) -> None:
    body = await api.ingest(session_id, content="first")
    assert body["session"]["id"] == session_id
    status, got = await api.call("GET", f"/api/sessions/{quote(session_id)}")
    assert (status, got["id"]) == (200, session_id)
    assert await list_ids(api) == [session_id]
    status, history = await api.call("GET", f"/api/sessions/{quote(session_id)}/messages")
    assert status == 200
    assert [m["content"] for m in history["messages"]] == ["first"]


async def test_get_session_has_the_full_record(api: Api) -> None:
    await api.ingest("s1", channel="slack", metadata={"k": "v"}, content="Hello world")
    status, body = await api.call("GET", "/api/sessions/s1")
    assert status == 200
    assert body["title"] == "Hello world"
    assert body["title_source"] == "auto"
    assert body["channel"] == "slack"
    assert body["active"] is True
    status, missing = await api.call("GET", "/api/sessions/nope")
    assert (status, missing) == (404, {"detail": "Session not found"})


async def test_list_parameters(api: Api) -> None:
    for n in range(7):
        channel = "telegram" if n % 2 else "web"
        await api.ingest(f"s{n}", channel=channel, timestamp=1_705_315_500 + n)
    await api.ingest("recent", channel="web")
    assert await list_ids(api) == ["recent", "s6", "s5", "s4", "s3", "s2", "s1", "s0"]
    assert await list_ids(api, "?limit=2&offset=3") == ["s4", "s3"]
    assert await list_ids(api, "?channel=telegram") == ["s5", "s3", "s1"]
    assert await list_ids(api, "?active=true") == ["recent"]
    assert await list_ids(api, "?active=false&channel=web&limit=2") == ["s6", "s4"]
    status, body = await api.call("GET", "/api/sessions?limit=3&channel=web")
    assert body["total"] == 5
    following: list[str] = []
    cursor = body["next_cursor"]
    while cursor:
        status, body = await api.call("GET", f"/api/sessions?limit=3&channel=web&cursor={cursor}")
        assert status == 200
        following += [s["id"] for s in body["sessions"]]
        cursor = body["next_cursor"]
    assert following == ["s2", "s0"]


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ("limit=0", "limit must be a whole number from 1 to 500."),
        ("limit=501", "limit must be a whole number from 1 to 500."),
        ("limit=ten", "limit must be a whole number from 1 to 500."),
        ("limit=", "limit must be a whole number from 1 to 500."),
        ("offset=-1", "offset must be a whole number from 0 to 1000000000."),
        ("offset=1e3", "offset must be a whole number from 0 to 1000000000."),
        ("active=maybe", "active must be true or false."),
        ("offset=0&cursor=abc", "Use either offset or cursor, not both."),
        ("channel=no%20spaces", None),
        ("channel=", None),
    ],
)
async def test_bad_list_parameters_are_422(api: Api, query: str, detail: str | None) -> None:
    status, body = await api.call("GET", f"/api/sessions?{query}")
    assert status == 422
    if detail is not None:
        assert body == {"detail": detail}
    else:
        assert body["detail"].startswith("channel must be")


@pytest.mark.parametrize("cursor", ["abc", "%%%", "W10", "WyJ4IiwgMV0"])
async def test_undecodable_cursor_is_400(api: Api, cursor: str) -> None:
    status, body = await api.call("GET", f"/api/sessions?cursor={cursor}")
    assert status == 400
    assert "cursor" in body["detail"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"content": "x", "channel": "web"}, "role must be one of"),
        ({"role": "robot", "content": "x", "channel": "web"}, "role must be one of"),
        ({"role": "user", "channel": "web"}, "content must be a string"),
        ({"role": "user", "content": 5, "channel": "web"}, "content must be a string"),
        ({"role": "user", "content": "x"}, "channel is required"),
        ({"role": "user", "content": "x", "channel": "a b"}, "channel must be"),
        ({"role": "user", "content": "x", "channel": "web", "id": ""}, "id must be 1 to 256"),
        ({"role": "user", "content": "x", "channel": "web", "id": 7}, "id must be a string"),
        ({"role": "user", "content": "x", "channel": "web", "timestamp": "yesterday"}, "RFC 3339"),
        ({"role": "user", "content": "x", "channel": "web", "timestamp": True}, "timestamp"),
        ({"role": "user", "content": "x", "channel": "web", "timestamp": 1e20}, "between 1970"),
        ({"role": "user", "content": "x", "channel": "web", "timestamp": -1.7e308}, "between 1970"),
        ({"role": "user", "content": "x", "channel": "web", "timestamp": 1e308}, "between 1970"),
        ({"role": "user", "content": "x", "channel": "web", "timestamp": -1}, "between 1970"),
        ({"role": "user", "content": "x", "channel": "web", "timestamp": 4e9}, "in the future"),
        ({"role": "user", "content": "x", "channel": "web", "metadata": [1]}, "JSON object"),
        ([1, 2], "must be a JSON object"),
        ("text", "must be a JSON object"),
    ],
)
async def test_bad_messages_are_422(api: Api, body: Any, fragment: str) -> None:
    status, answer = await api.call("POST", "/api/sessions/s1/messages", json=body)
    assert status == 422, answer
    assert fragment in answer["detail"]
    assert await list_ids(api) == []


async def test_limits_on_content_and_metadata(api: Api) -> None:
    big = "x" * (64 * 1024 + 1)
    message = {"role": "user", "content": big, "channel": "web"}
    status, body = await api.call("POST", "/api/sessions/s1/messages", json=message)
    assert status == 422
    assert "the limit is 65536" in body["detail"]
    message = {"role": "user", "content": "é" * 32768, "channel": "web"}
    status, body = await api.call("POST", "/api/sessions/s1/messages", json=message)
    assert status == 201
    meta = {"role": "user", "content": "x", "channel": "web", "metadata": {"k": "v" * 9000}}
    status, body = await api.call("POST", "/api/sessions/s1/messages", json=meta)
    assert status == 422
    assert "the limit is 8192" in body["detail"]


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 201),
        ("application/json; charset=utf-8", 201),
        ("Application/JSON", 201),
        ("application/vnd.api+json", 201),
        (" application/json ", 201),
        ("application/jsonx", 415),
        ("text/json", 415),
        ("application/x-www-form-urlencoded", 415),
    ],
)
async def test_json_bodies_are_known_by_their_content_type(
    api: Api, content_type: str, status: int
) -> None:
    body = b'{"role":"user","content":"hi","channel":"web"}'
    answer, _ = await api.call(
        "POST", "/api/sessions/ct/messages", data=body, headers={"Content-Type": content_type}
    )
    assert answer == status


async def test_body_errors(api: Api) -> None:
    path = "/api/sessions/s1/messages"
    headers = {"Content-Type": "application/json"}
    status, body = await api.call("POST", path, data=b"{not json", headers=headers)
    assert status == 400 and body["detail"].startswith("Body is not valid JSON")
    status, body = await api.call("POST", path, data=b"", headers=headers)
    assert status == 400 and "empty" in body["detail"]
    status, body = await api.call(
        "POST", path, data=b"role=user", headers={"Content-Type": "text/plain"}
    )
    assert (status, body) == (
        415,
        {"detail": "Send the body as JSON with Content-Type: application/json."},
    )
    huge = b'{"role":"user","content":"' + b"x" * (1024 * 1024) + b'","channel":"web"}'
    status, body = await api.call("POST", path, data=huge, headers=headers)
    assert (status, body) == (413, {"detail": "Body is larger than the limit of 1048576 bytes."})

    async def chunks() -> Any:
        for _ in range(20):
            yield b"x" * 65536

    status, body = await api.call("POST", path, data=chunks(), headers=headers)
    assert status == 413
    assert await list_ids(api) == []


@pytest.mark.parametrize(
    "raw",
    [
        b'{"role":"user","content":"\\ud800","channel":"web"}',
        b'{"role":"user","content":"a\xff","channel":"web"}',
        b'{"role":"user","content":NaN,"channel":"web"}',
        b'{"role":"user","content":"x","channel":"web","metadata":'
        + b"[" * 2000
        + b"]" * 2000
        + b"}",
        b'{"role":"user","content":"x","channel":"web","timestamp":1' + b"0" * 400 + b"}",
    ],
)
async def test_hostile_bodies_are_clean_errors(api: Api, raw: bytes) -> None:
    status, body = await api.call(
        "POST", "/api/sessions/s1/messages", data=raw, headers={"Content-Type": "application/json"}
    )
    assert status in (400, 422), body
    assert isinstance(body["detail"], str)
    assert await list_ids(api) == []


async def test_nul_and_control_characters(api: Api) -> None:
    status, body = await api.call("GET", "/api/sessions/a%00b")
    assert status == 422 and "control characters" in body["detail"]
    message = {"role": "user", "content": "a\u0000b", "channel": "web"}
    status, body = await api.call("POST", "/api/sessions/s1/messages", json=message)
    assert status == 201
    assert body["message"]["content"] == "a\u0000b"


async def test_unknown_route_and_wrong_method(api: Api) -> None:
    status, body = await api.call("GET", "/api/nothing-here")
    assert status == 404 and body["detail"].startswith("No route for GET /api/nothing-here")
    status, body = await api.call("PUT", "/api/sessions")
    assert status == 405
    assert "GET" in body["detail"] and "POST" in body["detail"]
    status, body = await api.call("GET", "/nowhere", token=None)
    assert status == 404 and "detail" in body


@pytest.mark.parametrize("dots", [".", ".."])
async def test_dot_ids_are_refused(api: Api, dots: str) -> None:
    message = {"role": "user", "content": "x", "channel": "web"}
    status, body = await api.call(
        "POST", "/api/messages", json={"messages": [{**message, "session_id": dots}]}
    )
    assert body["results"][0] == {"status": 422, "detail": "session_id cannot be '.' or '..'."}
    status, body = await api.call("POST", "/api/sessions", json={"id": dots, "channel": "web"})
    assert (status, body) == (422, {"detail": "id cannot be '.' or '..'."})


async def test_session_id_too_long(api: Api) -> None:
    status, body = await api.call("GET", "/api/sessions/" + "x" * 257)
    assert (status, body) == (422, {"detail": "session id must be 1 to 256 characters long."})


async def test_health_and_ready(api: Api) -> None:
    status, body = await api.call("GET", "/healthz", token=None)
    assert (status, body["status"], body["pid"]) == (200, "ok", os.getpid())
    assert await api.call("GET", "/readyz", token=None) == (200, {"status": "ready"})
