"""Search (bounded, case-insensitive, recency first) and export (json, md, streamed)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

import orjson
import pytest

from service.store import (
    PAGE_BYTES,
    SEARCH_STEP_BYTES,
    SEARCH_STEP_MESSAGES,
    SEARCH_STEP_SESSIONS,
    SEARCH_STEPS,
    fold_case,
)

from conftest import Api, quote


async def search_page(api: Api, query: str) -> dict[str, Any]:
    status, body = await api.call("GET", f"/api/sessions/search?{query}")
    assert status == 200, body
    assert body["complete"] is (body["next_cursor"] is None), body
    page: dict[str, Any] = body
    return page


async def search(api: Api, query: str) -> list[dict[str, Any]]:
    """The hits of one request that looked at everything."""
    page = await search_page(api, query)
    assert page["complete"], page
    result: list[dict[str, Any]] = page["sessions"]
    return result


async def search_all(api: Api, query: str) -> tuple[list[str], int]:
    """The ids of every hit, following next_cursor to the end, and the requests it took."""
    ids: list[str] = []
    page = await search_page(api, query)
    requests = 1
    while True:
        ids += [hit["id"] for hit in page["sessions"]]
        if page["complete"]:
            return ids, requests
        page = await search_page(api, f"{query}&cursor={page['next_cursor']}")
        requests += 1


async def test_hits_in_content_and_title_most_recent_first(api: Api) -> None:
    await api.ingest("old", content="Tell me about Prime numbers", timestamp="2024-01-01T00:00:00Z")
    await api.ingest("titled", content="unrelated", timestamp="2024-01-02T00:00:00Z")
    await api.call("PATCH", "/api/sessions/titled", json={"title": "All about PRIMES"})
    await api.ingest(
        "new", role="assistant", content="2, 3, 5 are primes", timestamp="2024-01-03T00:00:00Z"
    )
    await api.ingest("none", content="nothing to see", timestamp="2024-01-04T00:00:00Z")
    hits = await search(api, "q=prime")
    assert [h["id"] for h in hits] == ["new", "titled", "old"]
    assert hits[0] == {
        "id": "new",
        "title": "New session",
        "channel": "web",
        "match": "2, 3, 5 are primes",
        "match_role": "assistant",
        "last_activity": "2024-01-03T00:00:00Z",
    }
    assert (hits[1]["match"], hits[1]["match_role"]) == ("All about PRIMES", None)
    assert hits[2]["match_role"] == "user"
    # Stopped at the limit, the answer has not looked at everything: its cursor goes on.
    first = await search_page(api, "q=prime&limit=1")
    assert ([h["id"] for h in first["sessions"]], first["complete"]) == (["new"], False)
    rest = await search_page(api, f"q=prime&limit=5&cursor={first['next_cursor']}")
    assert [h["id"] for h in rest["sessions"]] == ["titled", "old"] and rest["complete"]


async def test_case_folding_beyond_ascii(api: Api) -> None:
    await api.ingest("fr", content="Rendez-vous à l'ÉCOLE demain")
    await api.ingest("ru", content="ПРИВЕТ, мир")
    await api.ingest("gr", content="Καλημέρα ΚΟΣΜΕ")
    assert [h["id"] for h in await search(api, "q=%C3%A9cole")] == ["fr"]  # école
    assert [h["id"] for h in await search(api, "q=%D0%BF%D1%80%D0%B8%D0%B2%D0%B5%D1%82")] == ["ru"]
    assert [h["id"] for h in await search(api, "q=κοσμε")] == ["gr"]
    assert fold_case("ÀÉÎÕÜ ΣΑ ЖЯ AZ") == "àéîõü σα жя az"


async def test_match_is_cut_and_quotes_are_found(api: Api) -> None:
    await api.ingest("long", content='say "hello" ' + "x" * 500)
    await api.ingest("slash", content="path C:\\temp\\file")
    hits = await search(api, "q=%22hello%22")
    assert [h["id"] for h in hits] == ["long"]
    assert len(hits[0]["match"]) == 200
    assert [h["id"] for h in await search(api, "q=C%3A%5Ctemp")] == ["slash"]


async def test_empty_and_bad_queries(api: Api) -> None:
    await api.ingest("s1", content="anything")
    assert await search(api, "q=") == []
    assert await search(api, "q=%20%20") == []
    assert await search(api, "") == []
    status, body = await api.call("GET", "/api/sessions/search?q=a&limit=0")
    assert status == 422
    status, body = await api.call("GET", "/api/sessions/search?q=" + "a" * 201)
    assert status == 422 and "at most 200" in body["detail"]


async def test_search_stops_at_its_bounds_and_goes_on_from_its_cursor(api: Api) -> None:
    # The only hit lies past what one request may scan: the first answer says it did not
    # look at everything, and its cursor leads to the hit, with no session twice.
    await api.ingest("target", content="findme", timestamp="2024-01-01T00:00:00Z")
    fillers = SEARCH_STEPS * SEARCH_STEP_SESSIONS + 5
    for start in range(0, fillers, 1000):
        batch = [
            {"session_id": f"filler{n}", "channel": "web", "role": "user", "content": "noise"}
            for n in range(start, min(start + 1000, fillers))
        ]
        status, _ = await api.call("POST", "/api/messages", json={"messages": batch})
        assert status == 200
    first = await search_page(api, "q=findme")
    assert (first["sessions"], first["complete"]) == ([], False)
    assert await search_all(api, "q=findme") == (["target"], 2)
    # Every filler matches "noise": paging through them all finds each exactly once.
    ids, _ = await search_all(api, "q=noise&limit=100")
    assert sorted(ids) == sorted(f"filler{n}" for n in range(fillers))


async def test_search_reads_every_message_of_a_long_session_in_steps(api: Api) -> None:
    await api.ingest(
        "deep", id="first", role="assistant", content="buried", timestamp="2025-01-01T00:00:00Z"
    )
    noise = SEARCH_STEPS * SEARCH_STEP_MESSAGES + 10
    for start in range(0, noise, 1000):
        batch = [
            {"session_id": "deep", "role": "user", "content": "noise", "id": f"n{n}"}
            for n in range(start, min(start + 1000, noise))
        ]
        await api.call("POST", "/api/messages", json={"messages": batch})
    assert (await search_page(api, "q=buried"))["complete"] is False
    ids, requests = await search_all(api, "q=buried")
    assert (ids, requests) == (["deep"], 2)
    hits = (await search_page(api, "q=noise"))["sessions"]
    assert [h["id"] for h in hits] == ["deep"]


async def test_a_forged_search_cursor_is_refused(api: Api) -> None:
    await api.ingest("s1", content="anything")
    for cursor in ("not-base64!", "WzFd", "WyJzZWFyY2giLDAsIngiLDE4NDQ2NzQ0MDczNzA5NTUxNjE1XQ"):
        status, body = await api.call("GET", f"/api/sessions/search?q=a&cursor={cursor}")
        assert status == 400 and "cursor" in body["detail"], (cursor, body)


async def test_export_json_has_every_message(api: Api) -> None:
    session_id = "C01ABC:1705123456.789"
    batch = [
        {
            "session_id": session_id,
            "channel": "slack",
            "role": "user",
            "content": f"m{n}",
            "id": f"{n}",
        }
        for n in range(1203)
    ]
    for start in range(0, 1203, 1000):
        status, _ = await api.call(
            "POST", "/api/messages", json={"messages": batch[start : start + 1000]}
        )
        assert status == 200
    async with api.client.get(
        f"/api/sessions/{quote(session_id)}/export?format=json", headers=api.tokens.header("reader")
    ) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        disposition = response.headers["Content-Disposition"]
        assert disposition == (
            'attachment; filename="session-C01ABC_1705123456.789.json"; '
            "filename*=UTF-8''session-C01ABC%3A1705123456.789.json"
        )
        body = orjson.loads(await response.read())
    assert body["session"]["id"] == session_id
    assert body["session"]["message_count"] == 1203
    assert [m["content"] for m in body["messages"]] == [f"m{n}" for n in range(1203)]


def filenames(disposition: str) -> tuple[str, str]:
    """The plain ``filename=`` and the decoded ``filename*=`` of a Content-Disposition."""
    plain = re.fullmatch(r'attachment; filename="([^"]*)"; filename\*=UTF-8\'\'(\S+)', disposition)
    assert plain, disposition
    return plain.group(1), unquote(plain.group(2))


async def test_export_filenames_differ_by_format_and_the_plain_one_is_ascii(api: Api) -> None:
    # curl -OJ reads only filename=: the two formats of one session must not share it.
    session_id = 'spaces/abc 1:ü"x'
    await api.ingest(session_id, content="hi")
    names = {}
    for export_format in ("json", "md"):
        async with api.client.get(
            f"/api/sessions/{quote(session_id)}/export?format={export_format}",
            headers=api.tokens.header("reader"),
        ) as response:
            assert response.status == 200
            names[export_format] = filenames(response.headers["Content-Disposition"])
    assert names["json"] == ("session-spaces_abc_1___x.json", f"session-{session_id}.json")
    assert names["md"] == ("session-spaces_abc_1___x.md", f"session-{session_id}.md")


async def test_export_plain_filename_of_the_longest_id_fits_a_file_system(api: Api) -> None:
    session_id = "é" * 256
    await api.ingest(session_id, content="hi")
    async with api.client.get(
        f"/api/sessions/{quote(session_id)}/export", headers=api.tokens.header("reader")
    ) as response:
        plain, exact = filenames(response.headers["Content-Disposition"])
    assert plain == "session-" + "_" * 200 + ".json"
    assert len(plain.encode()) <= 255
    assert exact == f"session-{session_id}.json"


async def test_export_markdown_and_empty_session(api: Api) -> None:
    await api.ingest("chat", content="What is 2+2?", id="q")
    await api.ingest("chat", role="assistant", content="**4**", id="a")
    async with api.client.get(
        "/api/sessions/chat/export?format=md", headers=api.tokens.header("admin")
    ) as response:
        assert response.status == 200
        assert response.content_type == "text/markdown"
        assert response.headers["Content-Disposition"].endswith("session-chat.md")
        text = await response.text()
    assert text.startswith("# What is 2+2?\n")
    assert "## user · " in text and "## assistant · " in text
    assert text.index("What is 2+2?\n\n## assistant") > 0
    await api.call("POST", "/api/sessions", json={"id": "empty", "channel": "web"})
    async with api.client.get(
        "/api/sessions/empty/export", headers=api.tokens.header("admin")
    ) as response:
        assert orjson.loads(await response.read())["messages"] == []


@pytest.mark.parametrize(
    ("path", "status"),
    [("/api/sessions/nope/export", 404), ("/api/sessions/chat/export?format=pdf", 422)],
)
async def test_export_errors(api: Api, path: str, status: int) -> None:
    await api.ingest("chat")
    got, body = await api.call("GET", path)
    assert got == status and body["detail"]


async def test_search_reads_a_bounded_number_of_bytes_per_request(api: Api) -> None:
    await api.ingest("target", content="needle", timestamp="2024-01-01T00:00:00Z")
    big = "x" * 60_000
    # A step stops at the first message that reaches its bytes.
    sessions = SEARCH_STEPS * (SEARCH_STEP_BYTES // 60_000 + 1) + 2
    messages = [
        {"session_id": f"big{n}", "channel": "web", "role": "assistant", "content": big}
        for n in range(sessions)
    ]
    for start in range(0, len(messages), 15):
        status, _ = await api.call(
            "POST", "/api/messages", json={"messages": messages[start : start + 15]}
        )
        assert status == 200
    # Fewer sessions and messages than the bounds, but more bytes lie before the match:
    # one request does not reach it, and its cursor does.
    assert sessions < SEARCH_STEP_SESSIONS
    first = await search_page(api, "q=needle")
    assert (first["sessions"], first["complete"]) == ([], False)
    ids, _ = await search_all(api, "q=needle")
    assert ids == ["target"]


async def ingest_large_session(api: Api) -> None:
    """Session "big": twelve messages m0..m11 of 60,000 characters, in one batch."""
    big = "y" * 60_000
    batch = [
        {
            "session_id": "big",
            "channel": "web",
            "role": "user",
            "content": f"{n}{big}",
            "id": f"m{n}",
        }
        for n in range(12)
    ]
    status, _ = await api.call("POST", "/api/messages", json={"messages": batch})
    assert status == 200


async def test_history_pages_are_bounded_in_bytes_and_page_on_exactly(api: Api) -> None:
    await ingest_large_session(api)
    pages: list[list[str]] = []
    path = "/api/sessions/big/messages?limit=50"
    while True:
        status, body = await api.call("GET", path)
        assert status == 200, body
        ids = [m["id"] for m in body["messages"]]
        assert 0 < len(ids) <= PAGE_BYTES // 60_000
        pages.append(ids)
        if body["next_cursor"] is None:
            break
        path = f"/api/sessions/big/messages?limit=50&before={body['next_cursor']}"
    # Newest page first, each page in order, every message exactly once.
    assert [i for page in reversed(pages) for i in page] == [f"m{n}" for n in range(12)]


async def test_export_of_large_messages_has_every_message_in_order(api: Api) -> None:
    await ingest_large_session(api)
    async with api.client.get(
        "/api/sessions/big/export?format=json", headers=api.tokens.header("reader")
    ) as response:
        assert response.status == 200
        exported = orjson.loads(await response.read())
    assert [m["id"] for m in exported["messages"]] == [f"m{n}" for n in range(12)]
