"""Search (bounded, case-insensitive, recency first) and export (json, md, streamed)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

import orjson
import pytest

from service.store import SEARCH_BYTES, SEARCH_MESSAGES_PER_SESSION, SEARCH_SESSIONS, fold_case

from conftest import Api, quote


async def search(api: Api, query: str) -> list[dict[str, Any]]:
    status, body = await api.call("GET", f"/api/sessions/search?{query}")
    assert status == 200, body
    result: list[dict[str, Any]] = body["sessions"]
    return result


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
    assert [h["id"] for h in await search(api, "q=prime&limit=1")] == ["new"]


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


async def test_search_work_is_bounded(api: Api) -> None:
    # The only hit lies past the session budget: it is not found, by design.
    await api.ingest("target", content="findme", timestamp="2024-01-01T00:00:00Z")
    batch = [
        {"session_id": f"filler{n}", "channel": "web", "role": "user", "content": "noise"}
        for n in range(SEARCH_SESSIONS)
    ]
    status, _ = await api.call("POST", "/api/messages", json={"messages": batch})
    assert status == 200
    assert await search(api, "q=findme") == []
    # Inside one session, only the newest messages within the per-session budget are read.
    await api.ingest(
        "deep", id="first", role="assistant", content="buried", timestamp="2025-01-01T00:00:00Z"
    )
    batch = [
        {"session_id": "deep", "role": "user", "content": "noise", "id": f"n{n}"}
        for n in range(SEARCH_MESSAGES_PER_SESSION)
    ]
    await api.call("POST", "/api/messages", json={"messages": batch})
    assert await search(api, "q=buried") == []
    await api.ingest("deep", id="last", content="buried again")
    assert [h["id"] for h in await search(api, "q=buried")] == ["deep"]


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


async def test_search_reads_a_bounded_number_of_bytes(api: Api) -> None:
    await api.ingest("target", content="needle", timestamp="2024-01-01T00:00:00Z")
    big = "x" * 60_000
    messages = [
        {"session_id": f"big{n}", "channel": "web", "role": "assistant", "content": big}
        for n in range(SEARCH_BYTES // 60_000 + 2)
    ]
    for start in range(0, len(messages), 15):
        status, _ = await api.call(
            "POST", "/api/messages", json={"messages": messages[start : start + 15]}
        )
        assert status == 200
    # Fewer sessions than the session budget, fewer messages than the message budget,
    # but more bytes than the byte budget lie before the match: it is not found.
    assert len(messages) < SEARCH_SESSIONS
    assert await search(api, "q=needle") == []
    await api.call("DELETE", "/api/sessions/big0")
    await api.call("DELETE", "/api/sessions/big1")
    await api.call("DELETE", "/api/sessions/big2")
    assert [h["id"] for h in await search(api, "q=needle")] == ["target"]
