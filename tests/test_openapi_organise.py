"""What service/openapi.json and docs/api.md say about organising sessions (SPEC §7),
the list's filters and counts holds for the service: every answer fits its documented
schema, the documented parameters and fields are the ones the handlers take, and the
documented rule of which list queries are read by rank (offset works, total exact)
and which are walks (cursor only, total an upper bound where the rule says so) is the
service's. On fakeredis and a real redis-server."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jsonschema_rs  # schemathesis's own validator, a dependency of the dev extras
import pytest

from service.handlers import BULK_ACTIONS, PATCH_FIELDS
from service.models import MAX_TAGS, RESERVED_IDS

from conftest import Api, quote

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT: dict[str, Any] = json.loads((ROOT / "service" / "openapi.json").read_text())
SCHEMAS = DOCUMENT["components"]["schemas"]
# The four filters that each name one sorted set (ListFilter.positive).
POSITIVE = {"channel": "telegram", "tag": "vip", "user": "alice", "pinned": "true"}


def fits(name: str, answer: Any) -> None:
    """``answer`` is valid against the document's schema ``name``, its $refs resolved
    within the document."""
    schema = {"$ref": f"#/components/schemas/{name}", "components": DOCUMENT["components"]}
    jsonschema_rs.Draft202012Validator(schema).validate(answer)


def parameters(path: str, method: str = "get") -> set[str]:
    item = DOCUMENT["paths"][path]
    found = item.get("parameters", []) + item[method].get("parameters", [])
    return {p["name"] for p in found}


def walked(query: dict[str, str]) -> bool:
    """The document's rule: a query is read by rank when one sorted set holds it (at most
    one of channel, pinned=true, tag and user, archived false or true, reader or not);
    else it walks."""
    positives = sum(name in query and query[name] == value for name, value in POSITIVE.items())
    return (
        positives > 1
        or query.get("pinned") == "false"
        or query.get("archived") == "any"
        or query.get("unread") == "true"
    )


def exact(query: dict[str, str]) -> bool:
    """The document's rule: total is an upper bound for two or more of channel,
    pinned=true, tag and user, pinned=false with one of them, and unread=true."""
    positives = sum(name in query and query[name] == value for name, value in POSITIVE.items())
    return not (
        positives > 1
        or (query.get("pinned") == "false" and positives > 0)
        or query.get("unread") == "true"
    )


async def sessions_to_organise(api: Api) -> None:
    """Sessions on two channels, two people, pinned, tagged, archived, read and not."""
    for n in range(6):
        channel = "telegram" if n % 2 else "web"
        user = "alice" if n < 4 else "bob"
        await api.ingest(f"s{n}", id="m1", channel=channel, user=user, timestamp=1_700_000_000 + n)
    for session_id, change in [
        ("s1", {"pinned": True, "tags": ["vip", "billing"]}),
        ("s2", {"tags": ["vip"]}),
        ("s3", {"pinned": True, "archived": True, "tags": ["vip"]}),
        ("s4", {"archived": True}),
    ]:
        status, session = await api.call("PATCH", f"/api/sessions/{session_id}", json=change)
        assert status == 200, session
        fits("Session", session)
    status, session = await api.call("POST", "/api/sessions/s1/read", json={"reader": "ops"})
    assert status == 200
    fits("Session", session)


def list_queries() -> list[dict[str, str]]:
    """Every combination of the filters, each in one of its documented values."""
    choices: list[list[tuple[str, str] | None]] = [
        [None, ("channel", "telegram")],
        [None, ("tag", "vip")],
        [None, ("user", "alice")],
        [None, ("pinned", "true"), ("pinned", "false")],
        [None, ("archived", "true"), ("archived", "any")],
        [None, ("reader", "ops"), ("unread", "true")],
    ]
    queries = []
    for picked in itertools.product(*choices):
        query = dict(pair for pair in picked if pair is not None)
        if query.get("unread") == "true":
            query["reader"] = "ops"
        queries.append(query)
    return queries


async def every_page(api: Api, query: dict[str, str]) -> tuple[list[dict[str, Any]], list[Any]]:
    """The items of every page of ``query`` (limit 2, following next_cursor) and the
    answers themselves."""
    items: list[dict[str, Any]] = []
    answers = []
    cursor: str | None = None
    for _ in range(20):
        paged = {**query, "limit": "2", **({"cursor": cursor} if cursor else {})}
        status, answer = await api.call("GET", "/api/sessions?" + urlencode(paged))
        assert status == 200, (query, answer)
        fits("SessionList", answer)
        answers.append(answer)
        items += answer["sessions"]
        cursor = answer["next_cursor"]
        if cursor is None:
            return items, answers
    raise AssertionError(f"next_cursor never ended for {query}")


async def test_list_answers_fit_the_document_and_its_rank_and_walk_rules(api: Api) -> None:
    await sessions_to_organise(api)
    for query in list_queries():
        items, answers = await every_page(api, query)
        for answer in answers:
            # total_exact is documented as present (false) only where total is a bound.
            assert ("total_exact" not in answer) == exact(query), query
            if exact(query):
                assert answer["total"] == len(items), query
            else:
                assert answer["total"] >= len(items), query
        for item in items:
            # unread_count is documented as present exactly with reader.
            assert ("unread_count" in item) == ("reader" in query), query
            archived = query.get("archived", "false")
            if archived != "any":
                assert item["archived"] == (archived == "true"), query
        # A walk takes cursor, not offset; a rank read takes both.
        status, answer = await api.call("GET", "/api/sessions?" + urlencode({**query, "offset": 1}))
        assert status == (422 if walked(query) else 200), (query, answer)


async def test_organising_answers_fit_the_document(api: Api) -> None:
    await sessions_to_organise(api)
    status, created = await api.call(
        "POST", "/api/sessions", json={"id": "new", "channel": "web", "user": "carol"}
    )
    assert status == 201
    fits("Session", created)
    assert created["user"] == "carol" and created["tags"] == []
    body = {"action": "tag", "tag": "later", "ids": ["s0", "s0", "gone"], "dry_run": True}
    fits("Bulk", body)
    status, outcome = await api.call("POST", "/api/sessions/bulk", json=body)
    assert status == 200
    fits("BulkOutcome", outcome)
    assert outcome == {"matched": 1, "changed": 1, "missing": ["gone"]}
    # Documented: a session that has 20 tags already is matched, not changed by tag.
    full = [f"t{n}" for n in range(MAX_TAGS)]
    await api.call("PATCH", "/api/sessions/s0", json={"tags": full})
    status, outcome = await api.call(
        "POST", "/api/sessions/bulk", json={"action": "tag", "tag": "more", "ids": ["s0"]}
    )
    assert outcome == {"matched": 1, "changed": 0, "missing": []}
    for hours in ("0", "24"):
        for reader in (None, "ops"):
            query = {"hours": hours, **({"reader": reader} if reader else {})}
            status, counts = await api.call("GET", "/api/sessions/counts?" + urlencode(query))
            assert status == 200
            fits("Counts", counts)
            assert ("activity" in counts) == (hours != "0")
            assert ("unread" in counts) == (reader is not None)
            for channel in counts["channels"].values():
                assert ("unread" in channel) == (reader is not None)
    # Documented: every count but archived counts the sessions not archived.
    _, counts = await api.call("GET", "/api/sessions/counts?reader=ops")
    _, shown = await api.call("GET", "/api/sessions?limit=500")
    _, archived = await api.call("GET", "/api/sessions?archived=true&limit=500")
    assert counts["total"] == shown["total"] and counts["archived"] == archived["total"]
    assert counts["pinned"] == sum(s["pinned"] for s in shown["sessions"])
    assert counts["tags"]["vip"] == sum("vip" in s["tags"] for s in shown["sessions"])
    unread, _ = await every_page(api, {"reader": "ops", "unread": "true"})
    assert counts["unread"] == len(unread)
    status, erased = await api.call("DELETE", "/api/users/" + quote("alice"))
    assert status == 200
    fits("Erased", erased)
    assert sorted(erased["session_ids"]) == ["s0", "s1", "s2", "s3"]


async def test_reserved_ids_and_search_are_as_documented(api: Api) -> None:
    for word in RESERVED_IDS:
        assert word in DOCUMENT["paths"]["/api/sessions"]["post"]["description"]
        status, answer = await api.call("POST", "/api/sessions", json={"id": word, "channel": "w"})
        assert status == 422, answer
    # Documented: search looks in the sessions that are not archived.
    await api.ingest("kept", id="m", content="needle here")
    await api.ingest("shelved", id="m", content="needle there")
    await api.call("PATCH", "/api/sessions/shelved", json={"archived": True})
    status, found = await api.call("GET", "/api/sessions/search?q=needle")
    assert [hit["id"] for hit in found["sessions"]] == ["kept"]
    assert "not archived" in DOCUMENT["paths"]["/api/sessions/search"]["get"]["description"]


def test_documented_parameters_and_bodies_are_the_handlers() -> None:
    assert parameters("/api/sessions") == {
        "If-None-Match",
        "limit",
        "offset",
        "cursor",
        "channel",
        "active",
        "archived",
        "pinned",
        "tag",
        "user",
        "reader",
        "unread",
    }
    assert parameters("/api/sessions/counts") == {"hours", "reader"}
    assert set(SCHEMAS["SessionChange"]["properties"]) == PATCH_FIELDS
    assert tuple(SCHEMAS["Bulk"]["properties"]["action"]["enum"]) == BULK_ACTIONS
    item = SCHEMAS["SessionItem"]
    assert {"pinned", "archived", "tags"} <= set(item["required"])
    assert not {"user", "unread_count"} & set(item["required"])
    assert item["properties"]["tags"]["maxItems"] == MAX_TAGS


@pytest.mark.parametrize(
    ("path", "method", "scope"),
    [
        ("/api/sessions/{session_id}/read", "post", "sessions:write"),
        ("/api/sessions/bulk", "post", "sessions:write"),
        ("/api/users/{user}", "delete", "sessions:delete"),
    ],
)
def test_organising_routes_document_their_scope(path: str, method: str, scope: str) -> None:
    assert DOCUMENT["paths"][path][method]["description"].startswith(f"Needs the `{scope}` scope.")
