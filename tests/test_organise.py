"""Organising sessions through the API (SPEC §7): PATCH of title, pinned, archived,
tags and metadata; a person across channels; reserved ids. On fakeredis and a real
redis-server."""

from __future__ import annotations

from typing import Any, cast

import pytest

from service.store import InvariantChecker, migrate_legacy_cards
from service.store.keys import keys_of
from service.store.types import RedisClient

from conftest import Api, quote


async def patch(api: Api, session_id: str, body: Any, token: str = "admin") -> tuple[int, Any]:
    return await api.call("PATCH", f"/api/sessions/{quote(session_id)}", json=body, token=token)


async def test_patch_sets_each_field_and_answers_the_session(
    api: Api, redis_client: RedisClient
) -> None:
    await api.ingest("s1", id="m1", channel="telegram")
    status, session = await patch(
        api,
        "s1",
        {"pinned": True, "tags": ["billing", "vip", "billing"], "metadata": {"k": 1}},
    )
    assert status == 200
    assert session["pinned"] is True and session["archived"] is False
    assert session["tags"] == ["billing", "vip"]
    assert session["metadata"] == {"k": 1}
    status, again = await api.call("GET", "/api/sessions/s1")
    assert again == session
    # The hash reads as it is in redis-cli.
    record = await redis_client.hgetall(keys_of("default").session("s1"))
    assert record[b"pinned"] == b"true" and record[b"tags"] == b"billing,vip"
    assert b"archived" not in record
    status, session = await patch(api, "s1", {"pinned": False, "tags": [], "metadata": {}})
    assert status == 200
    assert (session["pinned"], session["tags"], session["metadata"]) == (False, [], {})
    record = await redis_client.hgetall(keys_of("default").session("s1"))
    assert not {b"pinned", b"tags", b"metadata"} & set(record)
    status, session = await patch(api, "s1", {"title": "Named"})
    assert (session["title"], session["title_source"]) == ("Named", "user")


async def test_archived_sessions_leave_the_list_and_come_back(api: Api) -> None:
    for n in range(3):
        await api.ingest(f"s{n}", id="m", timestamp=f"2024-01-15T10:0{n}:00Z")
    await patch(api, "s1", {"archived": True})
    status, page = await api.call("GET", "/api/sessions")
    assert [s["id"] for s in page["sessions"]] == ["s2", "s0"] and page["total"] == 2
    status, session = await api.call("GET", "/api/sessions/s1")
    assert session["archived"] is True
    # A message to an archived session keeps it archived.
    await api.ingest("s1", id="m2")
    status, page = await api.call("GET", "/api/sessions")
    assert page["total"] == 2
    await patch(api, "s1", {"archived": False})
    status, page = await api.call("GET", "/api/sessions")
    assert [s["id"] for s in page["sessions"]] == ["s1", "s2", "s0"]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"tags": ["ok", "not ok"]}, "each tag must be 1 to 64 letters"),
        ({"tags": [f"t{n}" for n in range(21)]}, "at most 20 tags"),
        ({"tags": "vip"}, "tags must be a list"),
        ({"tags": ["x" * 65]}, "each tag must be 1 to 64"),
        ({"pinned": "yes"}, "pinned must be true or false"),
        ({"archived": 1}, "archived must be true or false"),
        ({"title": ""}, "title must not be empty"),
        ({"metadata": []}, "metadata must be a JSON object"),
        ({"channel": "web"}, "channel cannot be changed"),
        ({}, "Send at least one of"),
    ],
)
async def test_patch_refuses_what_breaks_a_rule(api: Api, body: Any, words: str) -> None:
    await api.ingest("s1", id="m1")
    status, answer = await patch(api, "s1", body)
    assert status == 422 and words in answer["detail"]


async def test_patch_unknown_session_and_scopes(api: Api) -> None:
    status, _ = await patch(api, "nope", {"pinned": True})
    assert status == 404
    await api.ingest("s1", id="m1")
    status, _ = await patch(api, "s1", {"pinned": True}, token="reader")
    assert status == 403


async def test_a_change_to_what_it_is_already_changes_nothing(api: Api) -> None:
    await api.ingest("s1", id="m1")
    await patch(api, "s1", {"pinned": True, "tags": ["a"]})
    async with api.client.get("/api/sessions", headers=api.tokens.header("admin")) as response:
        tag = response.headers["ETag"]
    await patch(api, "s1", {"pinned": True, "tags": ["a"]})
    headers = {**api.tokens.header("admin"), "If-None-Match": tag}
    async with api.client.get("/api/sessions", headers=headers) as response:
        assert response.status == 304


async def test_a_session_keeps_the_first_person_given(api: Api) -> None:
    await api.ingest("tg-1", id="m1", channel="telegram")
    await api.ingest("tg-1", id="m2", user="alice@example.com")
    await api.ingest("tg-1", id="m3", user="someone else")
    status, session = await api.call("GET", "/api/sessions/tg-1")
    assert session["user"] == "alice@example.com"
    status, created = await api.call(
        "POST", "/api/sessions", json={"id": "web-1", "channel": "web", "user": "alice@example.com"}
    )
    assert status == 201 and created["user"] == "alice@example.com"
    status, plain = await api.call("GET", "/api/sessions")
    items = {s["id"]: s for s in plain["sessions"]}
    assert items["web-1"]["user"] == "alice@example.com"
    for bad in ("", "x" * 257, "a\nb", 5):
        status, answer = await api.call(
            "POST",
            "/api/sessions/s9/messages",
            json={"role": "user", "content": "x", "channel": "web", "user": bad},
        )
        assert status == 422 and "user" in answer["detail"]


@pytest.mark.parametrize("word", ["search", "counts", "bulk"])
async def test_route_words_cannot_be_session_ids(api: Api, word: str) -> None:
    status, answer = await api.call("POST", "/api/sessions", json={"id": word, "channel": "web"})
    assert status == 422 and f"/api/sessions/{word} is a route" in answer["detail"]
    status, answer = await api.call(
        "POST",
        f"/api/sessions/{word}/messages",
        json={"role": "user", "content": "x", "channel": "web"},
    )
    assert status == 422 and "is a route" in answer["detail"]
    status, answer = await api.call(
        "POST",
        "/api/messages",
        json={"messages": [{"session_id": word, "role": "user", "content": "x", "channel": "web"}]},
    )
    assert answer["results"][0]["status"] == 422
    # Longer ids that hold the word are ids like any other.
    await api.ingest(f"{word}-1", id="m")


async def test_bulk_actions(api: Api) -> None:
    for n in range(4):
        await api.ingest(f"s{n}", id="m")
    ids = ["s0", "s1", "s2", "nope", "s0"]
    status, answer = await api.call(
        "POST", "/api/sessions/bulk", json={"action": "archive", "ids": ids, "dry_run": True}
    )
    assert (status, answer) == (200, {"matched": 3, "changed": 3, "missing": ["nope"]})
    _, page = await api.call("GET", "/api/sessions")
    assert page["total"] == 4
    status, answer = await api.call(
        "POST", "/api/sessions/bulk", json={"action": "archive", "ids": ids}
    )
    assert answer == {"matched": 3, "changed": 3, "missing": ["nope"]}
    _, page = await api.call("GET", "/api/sessions")
    assert [s["id"] for s in page["sessions"]] == ["s3"]
    status, answer = await api.call(
        "POST", "/api/sessions/bulk", json={"action": "archive", "ids": ["s0", "s3"]}
    )
    assert answer == {"matched": 2, "changed": 1, "missing": []}
    status, answer = await api.call(
        "POST", "/api/sessions/bulk", json={"action": "tag", "tag": "vip", "ids": ["s0", "s3"]}
    )
    assert answer["changed"] == 2
    _, counts = await api.call("GET", "/api/sessions/counts")
    # Counts count the sessions not archived; the archived ones are counted apart.
    assert counts["tags"] == {} and counts["archived"] == 4
    _, tagged = await api.call("GET", "/api/sessions?tag=vip&archived=true")
    assert tagged["total"] == 2
    status, answer = await api.call(
        "POST", "/api/sessions/bulk", json={"action": "untag", "tag": "vip", "ids": ["s0"]}
    )
    assert answer["changed"] == 1
    status, answer = await api.call(
        "POST", "/api/sessions/bulk", json={"action": "pin", "ids": ["s3"]}
    )
    assert answer["changed"] == 1
    status, answer = await api.call(
        "POST", "/api/sessions/bulk", json={"action": "delete", "ids": ["s3"]}, token="writer"
    )
    assert status == 403 and "delete" in answer["detail"]
    status, answer = await api.call(
        "POST", "/api/sessions/bulk", json={"action": "delete", "ids": ["s3", "s2"]}
    )
    assert answer == {"matched": 2, "changed": 2, "missing": []}
    _, counts = await api.call("GET", "/api/sessions/counts")
    assert counts["total"] == 0 and counts["archived"] == 2


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"action": "explode", "ids": ["a"]}, 422, "action must be one of"),
        ({"action": "pin", "ids": []}, 422, "ids must be a list of 1 to 1000"),
        ({"action": "pin", "ids": ["x"] * 1001}, 422, "1 to 1000"),
        ({"action": "pin", "ids": [5]}, 422, "each id must be a string"),
        ({"action": "tag", "ids": ["a"]}, 422, "tag must be 1 to 64"),
        ({"action": "pin", "ids": ["a"], "tag": "x"}, 422, "tag goes with tag and untag"),
        ({"action": "pin", "ids": ["a"], "dry_run": "no"}, 422, "dry_run must be true or false"),
    ],
)
async def test_bulk_refuses(api: Api, body: Any, status: int, words: str) -> None:
    got, answer = await api.call("POST", "/api/sessions/bulk", json=body)
    assert got == status and words in answer["detail"]


async def test_bulk_of_many_sessions_goes_in_steps(api: Api) -> None:
    messages = [
        {"session_id": f"s{n:04d}", "role": "user", "content": "x", "channel": "web", "id": "m"}
        for n in range(1000)
    ]
    status, _ = await api.call("POST", "/api/messages", json={"messages": messages})
    assert status == 200
    ids = [m["session_id"] for m in messages]
    status, answer = await api.call(
        "POST", "/api/sessions/bulk", json={"action": "pin", "ids": ids}
    )
    assert answer == {"matched": 1000, "changed": 1000, "missing": []}
    _, page = await api.call("GET", "/api/sessions?pinned=true&limit=1")
    assert page["total"] == 1000


async def test_erasure_of_a_person(api: Api, redis_client: RedisClient) -> None:
    await api.ingest("tg-1", id="m1", channel="telegram", user="alice", content="secret one")
    await api.ingest("web-1", id="m1", channel="web", user="alice", content="secret two")
    await api.ingest("web-2", id="m1", channel="web", user="bob", content="kept")
    await api.call("PATCH", "/api/sessions/web-1", json={"archived": True})
    await api.call("POST", "/api/sessions/tg-1/read", json={"reader": "ops"})
    other = {"role": "user", "content": "theirs", "channel": "web", "user": "alice"}
    status, _ = await api.call("POST", "/api/sessions/o-1/messages", json=other, token="other")
    assert status == 201
    status, answer = await api.call("DELETE", "/api/users/alice", token="writer")
    assert status == 403
    status, answer = await api.call("DELETE", "/api/users/alice")
    assert status == 200
    assert answer["deleted"] == 2 and sorted(answer["session_ids"]) == ["tg-1", "web-1"]
    status, again = await api.call("DELETE", "/api/users/alice")
    assert again == {"deleted": 0, "session_ids": []}
    _, page = await api.call("GET", "/api/sessions?archived=any")
    assert [s["id"] for s in page["sessions"]] == ["web-2"]
    # Another namespace's alice is untouched.
    _, theirs = await api.call("GET", "/api/sessions?user=alice", token="other")
    assert [s["id"] for s in theirs["sessions"]] == ["o-1"]
    # Nothing of theirs is left in Redis: no key, no event with their words.
    keys = keys_of("default")
    for session_id in ("tg-1", "web-1"):
        assert not await redis_client.exists(
            keys.session(session_id), keys.messages(session_id), keys.seen(session_id)
        )
    # Their events are gone but those saying they were deleted, which hold no content.
    events = cast(list[tuple[bytes, dict[bytes, bytes]]], await redis_client.xrange(keys.events))
    left = [(f[b"type"], f[b"id"]) for _, f in events if f[b"id"] in (b"tg-1", b"web-1")]
    assert sorted(left) == [(b"session.deleted", b"tg-1"), (b"session.deleted", b"web-1")]
    for _, fields in events:
        assert b"secret" not in fields.get(b"message", b"")
        assert b"secret" not in fields.get(b"item", b"")
    status, odd = await api.call("DELETE", "/api/users/" + quote("x@y.z/ü 1%"))
    assert (status, odd) == (200, {"deleted": 0, "session_ids": []})


async def test_sessions_of_release_0_2_come_to_this_layout(
    api: Api, redis_client: RedisClient
) -> None:
    """0.2 kept no organisation in the item, no channels set, no counts of empty
    sessions: the move pass (at start, or chatsessions migrate) brings them in."""
    await api.ingest("a", id="1", channel="web")
    await api.call("POST", "/api/sessions", json={"id": "empty", "channel": "tg"})
    keys = keys_of("default")
    for session_id in ("a", "empty"):
        item = cast(bytes | None, await redis_client.hget(keys.session(session_id), "item"))
        assert item is not None
        earlier = item.split(b',"pinned":')[0]
        await redis_client.hset(keys.session(session_id), "item", earlier)
    await redis_client.delete(keys.channels, keys.layout, keys.empty)
    assert not (await InvariantChecker(redis_client).check("default")).ok
    await migrate_legacy_cards(redis_client, "default")
    report = await InvariantChecker(redis_client).check("default")
    assert report.problems == []
    _, page = await api.call("GET", "/api/sessions")
    assert all(s["tags"] == [] and s["pinned"] is False for s in page["sessions"])
    await api.call("POST", "/api/sessions/a/read", json={"reader": "ops"})
    _, counts = await api.call("GET", "/api/sessions/counts?reader=ops")
    assert counts["unread"] == 0 and set(counts["channels"]) == {"web", "tg"}


async def test_whoami_names_the_token(api: Api) -> None:
    status, me = await api.call("GET", "/api/whoami", token="reader")
    assert (status, me) == (
        200,
        {"name": "reader", "namespace": "default", "scopes": ["sessions:read"]},
    )
    status, me = await api.call("GET", "/api/whoami", token="other")
    assert me["namespace"] == "other" and me["name"] == "other"
    status, _ = await api.call("GET", "/api/whoami", token=None)
    assert status == 401


async def test_an_unknown_path_with_a_newline_answers_json(api: Api) -> None:
    status, body = await api.call("GET", "/nothing%0Ahere")
    assert status == 404 and "detail" in body
