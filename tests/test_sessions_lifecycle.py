"""Create, rename, delete and history over HTTP, on fakeredis and a real redis-server."""

from __future__ import annotations

import pytest

from conftest import Api, quote


async def test_create_with_and_without_id(api: Api) -> None:
    status, made = await api.call("POST", "/api/sessions", json={"channel": "web"})
    assert status == 201
    assert made["id"].startswith("session_") and len(made["id"]) == len("session_") + 16
    assert made["title"] == "New session" and made["title_source"] == "default"
    assert made["message_count"] == 0 and made["active"] is True
    body = {"id": "dm:42", "channel": "discord", "title": "  My   chat ", "metadata": {"a": 1}}
    status, named = await api.call("POST", "/api/sessions", json=body)
    assert status == 201
    assert (named["id"], named["title"], named["title_source"]) == ("dm:42", "My chat", "user")
    assert named["metadata"] == {"a": 1}
    status, again = await api.call("POST", "/api/sessions", json=body)
    assert (status, again) == (409, {"detail": "A session with this id already exists."})
    status, listed = await api.call("GET", "/api/sessions")
    assert listed["total"] == 2
    status, got = await api.call("GET", "/api/sessions/dm%3A42")
    assert got["metadata"] == {"a": 1}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({}, "channel must be"),
        ({"channel": "web", "title": ""}, "title must not be empty"),
        ({"channel": "web", "title": "   "}, "title must not be empty"),
        ({"channel": "web", "title": "x" * 201}, "at most 200"),
        ({"channel": "web", "title": 5}, "title must be a string"),
        ({"channel": "web", "id": ""}, "id must be 1 to 256"),
        ({"channel": "web", "metadata": "x"}, "metadata must be a JSON object"),
    ],
)
async def test_create_refuses_bad_values(api: Api, body: dict[str, object], fragment: str) -> None:
    status, answer = await api.call("POST", "/api/sessions", json=body)
    assert status == 422
    assert fragment in answer["detail"]


async def test_rename_three_ways_and_auto_title_never_wins(api: Api) -> None:
    await api.ingest("s1", content="auto title here")
    status, body = await api.call("PATCH", "/api/sessions/s1", json={"title": "Patched"})
    assert (status, body["title"], body["title_source"]) == (200, "Patched", "user")
    for method in ("POST", "PUT"):
        status, body = await api.call(method, "/api/sessions/s1/title", json={"title": method})
        assert (status, body) == (200, {"status": "ok"})
        status, got = await api.call("GET", "/api/sessions/s1")
        assert got["title"] == method
    await api.ingest("s1", content="another user message")
    status, got = await api.call("GET", "/api/sessions/s1")
    assert got["title"] == "PUT"
    status, body = await api.call("PATCH", "/api/sessions/s1", json={"title": "x" * 200})
    assert status == 200
    for bad in [{"title": ""}, {"title": " \n\t "}, {"title": "x" * 201}, {}, {"title": None}]:
        status, body = await api.call("PATCH", "/api/sessions/s1", json=bad)
        assert status == 422, bad
    status, body = await api.call("PATCH", "/api/sessions/missing", json={"title": "x"})
    assert (status, body) == (404, {"detail": "Session not found"})
    status, body = await api.call("POST", "/api/sessions/missing/title", json={"title": "x"})
    assert status == 404


async def test_rename_does_not_change_order_or_activity(api: Api) -> None:
    await api.ingest("old", timestamp="2024-01-01T00:00:00Z")
    await api.ingest("new", timestamp="2024-02-01T00:00:00Z")
    await api.call("PATCH", "/api/sessions/old", json={"title": "Renamed"})
    status, body = await api.call("GET", "/api/sessions")
    assert [s["id"] for s in body["sessions"]] == ["new", "old"]
    assert body["sessions"][1]["updated_at"] == "2024-01-01T00:00:00Z"


async def test_delete_removes_everything_and_the_id_can_start_again(api: Api) -> None:
    session_id = "spaces/abc123"
    path = f"/api/sessions/{quote(session_id)}"
    for n in range(3):
        await api.ingest(session_id, id=f"m{n}", content=f"needle {n}", channel="slack")
    await api.ingest("keep", content="needle kept")
    status, body = await api.call("GET", "/api/sessions")
    assert body["total"] == 2
    assert await api.call("DELETE", path) == (200, {"status": "ok"})
    assert await api.call("DELETE", path) == (404, {"detail": "Session not found"})
    assert await api.call("GET", path) == (404, {"detail": "Session not found"})
    assert (await api.call("GET", path + "/messages"))[0] == 404
    status, body = await api.call("GET", "/api/sessions")
    assert (body["total"], [s["id"] for s in body["sessions"]]) == (1, ["keep"])
    status, body = await api.call("GET", "/api/sessions?channel=slack")
    assert (body["total"], body["sessions"]) == (0, [])
    status, body = await api.call("GET", "/api/sessions/search?q=needle")
    assert [s["id"] for s in body["sessions"]] == ["keep"]
    # The same id and message ids start from scratch: nothing is taken for a duplicate.
    again = await api.ingest(session_id, id="m0", content="fresh start", channel="web")
    assert again["session"]["message_count"] == 1
    assert again["session"]["channel"] == "web"
    assert again["session"]["title"] == "fresh start"
    status, history = await api.call("GET", path + "/messages")
    assert [m["content"] for m in history["messages"]] == ["fresh start"]


async def test_history_pages_newest_first_each_in_order(api: Api) -> None:
    messages = [
        {"id": f"m{n:04d}", "role": "user" if n % 2 else "assistant", "content": f"text {n}"}
        for n in range(1000)
    ]
    status, body = await api.call(
        "POST",
        "/api/messages",
        json={"messages": [{"session_id": "long", "channel": "web", **m} for m in messages]},
    )
    assert status == 200 and body["created"] == 1000
    pages = []
    cursor = None
    while True:
        query = "?limit=75" + (f"&before={cursor}" if cursor else "")
        status, page = await api.call("GET", f"/api/sessions/long/messages{query}")
        assert status == 200
        pages.append([m["id"] for m in page["messages"]])
        # A message written while paging does not disturb the pages still to come.
        await api.ingest("long", id=f"late{len(pages)}", content="late")
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages[0] == [f"m{n:04d}" for n in range(925, 1000)]
    assert all(page == sorted(page) for page in pages)
    flat = [message_id for page in reversed(pages) for message_id in page]
    assert flat == [f"m{n:04d}" for n in range(1000)]
    status, page = await api.call("GET", "/api/sessions/long/messages?limit=2")
    assert [m["id"] for m in page["messages"]] == [f"late{len(pages) - 1}", f"late{len(pages)}"]
    first = page["messages"][0]
    assert set(first) == {"id", "role", "content", "timestamp", "metadata"}


@pytest.mark.parametrize(
    ("query", "status"),
    [("?limit=0", 422), ("?limit=501", 422), ("?before=zzz", 400), ("?before=WyJtIiwtMV0", 400)],
)
async def test_history_bad_parameters(api: Api, query: str, status: int) -> None:
    await api.ingest("s1")
    got, body = await api.call("GET", f"/api/sessions/s1/messages{query}")
    assert got == status
    assert body["detail"]
