"""The list's filters, read state and counts (SPEC §7) against a model, on fakeredis and a
real redis-server: random sequences of writes, pins, archives, tags, reads and deletes
keep every sorted set and counter true to the hashes, and every filter and combination
pages through exactly its matches, once each, in the list's order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.models import MessageIn
from service.store import InvariantChecker, ListFilter, SessionNotFound, SessionStore
from service.store.keys import keys_of
from service.store.types import SessionChange

from conftest import ACTIVE_WINDOW_MS, Api

NOW = 1_705_315_500_000
NS = "default"
CHANNELS = ["web", "tg"]
TAGS = ["vip", "billing", "a:b"]
USERS = ["alice", "bob@x"]
# A reader may be any text: "*" and "->" mean something in a SORT GET pattern.
READERS = ["ops", "q*a->x"]
IDS = ["s0", "s1", "s2", "s3:x", "s4/y", "s 5"]


@dataclass
class Model:
    channel: str
    score: int
    count: int = 0
    pinned: bool = False
    archived: bool = False
    tags: tuple[str, ...] = ()
    user: str | None = None
    marks: dict[str, int] = field(default_factory=dict)


def order(models: dict[str, Model], ids: list[str]) -> list[str]:
    # The list's order: most recent first, ties by id descending (ZREVRANGE).
    return sorted(ids, key=lambda i: (models[i].score, i.encode()), reverse=True)


def expected(
    models: dict[str, Model], channel: str | None, f: ListFilter, active: bool | None = None
) -> list[str]:
    found = []
    for session_id, m in models.items():
        if active is not None and (m.score >= NOW - ACTIVE_WINDOW_MS) != active:
            continue
        if f.archived is not None and m.archived != f.archived:
            continue
        if channel is not None and m.channel != channel:
            continue
        if f.pinned is not None and m.pinned != f.pinned:
            continue
        if f.tag is not None and f.tag not in m.tags:
            continue
        if f.user is not None and m.user != f.user:
            continue
        if f.unread and f.reader is not None and m.count <= m.marks.get(f.reader, 0):
            continue
        found.append(session_id)
    return order(models, found)


async def walk(
    store: SessionStore, channel: str | None, f: ListFilter, limit: int, active: bool | None = None
) -> tuple[list[dict[str, Any]], list[int], list[bool]]:
    """Every page of a query, following next_cursor to the end: the items, the totals
    and whether each total was exact."""
    items: list[dict[str, Any]] = []
    totals, exact = [], []
    cursor = None
    for _ in range(200):
        page = await store.list_sessions(
            NS, limit=limit, now=NOW, cursor=cursor, channel=channel, filters=f, active=active
        )
        body = orjson.loads(page.json())
        items += body["sessions"]
        totals.append(body["total"])
        exact.append(body.get("total_exact", True))
        cursor = body["next_cursor"]
        if cursor is None:
            return items, totals, exact
    raise AssertionError("next_cursor never ended")


QUERIES: list[tuple[str | None, ListFilter]] = [
    (None, ListFilter()),
    (None, ListFilter(archived=True)),
    (None, ListFilter(archived=None)),
    ("web", ListFilter()),
    ("tg", ListFilter(archived=True)),
    (None, ListFilter(pinned=True)),
    (None, ListFilter(pinned=False)),
    (None, ListFilter(pinned=True, archived=None)),
    (None, ListFilter(tag="vip")),
    (None, ListFilter(tag="a:b", archived=True)),
    (None, ListFilter(user="alice")),
    (None, ListFilter(user="bob@x", archived=None)),
    ("web", ListFilter(tag="vip")),
    ("tg", ListFilter(tag="billing", user="alice")),
    (None, ListFilter(pinned=True, tag="vip", archived=None)),
    ("web", ListFilter(pinned=False)),
    (None, ListFilter(reader="ops")),
    (None, ListFilter(reader="ops", unread=True)),
    ("tg", ListFilter(reader="q*a->x", unread=True, archived=None)),
    ("web", ListFilter(reader="q*a->x")),
    (None, ListFilter(tag="vip", reader="ops", archived=True)),
]


ACTIVE_QUERIES: list[tuple[str | None, ListFilter, bool]] = [
    (None, ListFilter(), True),
    (None, ListFilter(), False),
    ("web", ListFilter(archived=None), False),
    (None, ListFilter(archived=None, tag="vip"), True),
    (None, ListFilter(pinned=False, reader="ops"), False),
    ("tg", ListFilter(user="alice", archived=True), True),
    # One half walked by rank: its active sessions end at a rank, not at a score.
    ("web", ListFilter(tag="vip"), True),
    ("web", ListFilter(tag="vip"), False),
    (None, ListFilter(pinned=False, unread=True, reader="ops"), True),
    # A reader's page read by page.lua (the inactive start is only known in Redis).
    ("web", ListFilter(reader="q*a->x"), False),
    (None, ListFilter(reader="ops"), True),
]


def check_items(models: dict[str, Model], items: list[Any], f: ListFilter) -> None:
    for item in items:
        m = models[item["id"]]
        assert (item["pinned"], item["archived"], item["tags"]) == (
            m.pinned,
            m.archived,
            list(m.tags),
        )
        assert item.get("user") == m.user
        if f.reader is not None:
            assert item["unread_count"] == max(m.count - m.marks.get(f.reader, 0), 0)
        else:
            assert "unread_count" not in item


async def check_everything(store: SessionStore, models: dict[str, Model]) -> None:
    for channel, f in QUERIES:
        want = expected(models, channel, f)
        for limit in (1, 2, 50):
            items, totals, exact = await walk(store, channel, f, limit)
            assert [i["id"] for i in items] == want, (channel, f, limit)
            for total, is_exact in zip(totals, exact, strict=True):
                if is_exact:
                    assert total == len(want), (channel, f)
                else:
                    # An estimate never hides a match.
                    assert total >= len(want), (channel, f)
        single = len(f.positive(channel)) <= 1 and not f.unread and f.pinned is not False
        if single:
            assert all(exact), (channel, f)
        check_items(models, items, f)
    for reader in (None, *READERS):
        counts = (await store.counts(NS, now=NOW, reader=reader)).as_dict()
        live = {i: m for i, m in models.items() if not m.archived}
        assert counts["total"] == len(live)
        assert counts["archived"] == len(models) - len(live)
        assert counts["pinned"] == sum(m.pinned for m in live.values())
        channels = {m.channel for m in live.values()}
        assert set(counts["channels"]) == channels
        tags = {t for m in live.values() for t in m.tags}
        assert counts["tags"] == {t: sum(t in m.tags for m in live.values()) for t in tags}
        for channel in channels:
            of_channel = [m for m in live.values() if m.channel == channel]
            assert counts["channels"][channel]["total"] == len(of_channel)
            if reader is not None:
                unread = [m for m in of_channel if m.count > m.marks.get(reader, 0)]
                assert counts["channels"][channel]["unread"] == len(unread), (reader, channel)
        if reader is not None:
            assert counts["unread"] == sum(m.count > m.marks.get(reader, 0) for m in live.values())
    for channel, f, active in ACTIVE_QUERIES:
        want = expected(models, channel, f, active)
        items, totals, exact = await walk(store, channel, f, 2, active)
        assert [i["id"] for i in items] == want, (channel, f, active)
        assert all(i["active"] is active for i in items)
        check_items(models, items, f)
    report = await InvariantChecker(store._redis).check(NS)
    assert report.problems == []


operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("message"),
            st.sampled_from(IDS),
            st.sampled_from(CHANNELS),
            st.integers(0, 30),
            st.sampled_from([None, *USERS]),
        ),
        st.tuples(
            st.just("create"),
            st.sampled_from(IDS),
            st.sampled_from(CHANNELS),
            st.integers(0, 30),
            st.sampled_from([None, *USERS]),
        ),
        st.tuples(
            st.just("patch"),
            st.sampled_from(IDS),
            st.sampled_from([None, True, False]),
            st.sampled_from([None, True, False]),
            st.sampled_from([None, (), ("vip",), ("billing", "a:b"), ("a:b", "vip", "billing")]),
        ),
        st.tuples(
            st.just("read"),
            st.sampled_from(IDS),
            st.sampled_from(READERS),
            st.sampled_from([None, 0, 1, 3]),
            st.just(None),
        ),
        st.tuples(
            st.just("delete"), st.sampled_from(IDS), st.just(None), st.just(None), st.just(None)
        ),
    ),
    max_size=30,
)


async def apply(store: SessionStore, models: dict[str, Model], op: tuple[Any, ...], n: int) -> None:
    kind, session_id, a, b, c = op
    if kind == "message":
        ts = NOW - ACTIVE_WINDOW_MS * 2 + b * 60_000
        message = MessageIn(f"m{n}", "user", "hi", ts, None, a, c)
        await store.add_message(NS, session_id, message, now=NOW)
        if session_id not in models:
            models[session_id] = Model(channel=a, score=ts)
        m = models[session_id]
        m.count += 1
        m.score = max(m.score, ts)
        if m.user is None:
            m.user = c
    elif kind == "create":
        if session_id in models:
            return
        ts = NOW - ACTIVE_WINDOW_MS * 2 + b * 60_000
        await store.create_session(
            NS, session_id, channel=a, title=None, metadata=None, now=ts, user=c
        )
        models[session_id] = Model(channel=a, score=ts, user=c)
    elif kind == "patch":
        change = SessionChange(pinned=a, archived=b, tags=c)
        if a is None and b is None and c is None:
            return
        if session_id not in models:
            with pytest.raises(SessionNotFound):
                await store.update_session(NS, session_id, change, now=NOW)
            return
        await store.update_session(NS, session_id, change, now=NOW)
        m = models[session_id]
        m.pinned = m.pinned if a is None else a
        m.archived = m.archived if b is None else b
        m.tags = m.tags if c is None else c
    elif kind == "read":
        if session_id not in models:
            with pytest.raises(SessionNotFound):
                await store.mark_read(NS, session_id, a, up_to=b, now=NOW)
            return
        await store.mark_read(NS, session_id, a, up_to=b, now=NOW)
        m = models[session_id]
        m.marks[a] = m.count if b is None else min(b, m.count)
    else:
        if session_id not in models:
            with pytest.raises(SessionNotFound):
                await store.delete_session(NS, session_id)
            return
        await store.delete_session(NS, session_id)
        del models[session_id]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
async def test_indexes_follow_the_hashes(store: SessionStore, ops: list[tuple[Any, ...]]) -> None:
    await store._redis.flushdb()
    models: dict[str, Model] = {}
    for n, op in enumerate(ops):
        await apply(store, models, op, n)
    await check_everything(store, models)


async def test_a_combination_pages_on_past_a_bound(store: SessionStore) -> None:
    """Matches rarer than the walk's bound: short pages, each with a cursor, until all
    are found, none twice."""
    items = [(f"s{n:04d}", MessageIn("m", "user", "hi", NOW - n, None, "web")) for n in range(1200)]
    for start in range(0, len(items), 500):
        await store.add_messages(NS, items[start : start + 500], now=NOW)
    rare = [f"s{n:04d}" for n in (5, 700, 1150)]
    for session_id in rare:
        await store.update_session(
            NS, session_id, SessionChange(tags=("vip",), pinned=True), now=NOW
        )
    for session_id in ("s0001", "s0002"):
        await store.update_session(NS, session_id, SessionChange(tags=("vip",)), now=NOW)
    f = ListFilter(tag="vip", pinned=False)
    found, totals, exact = await walk(store, None, f, 10)
    assert [i["id"] for i in found] == ["s0001", "s0002"]
    f = ListFilter(reader="ops", unread=True, pinned=True)
    found, totals, exact = await walk(store, None, f, 10)
    assert [i["id"] for i in found] == rare
    assert not exact[0]
    # Unread alone walks the whole list: the pages that found nothing still go on.
    for session_id in [f"s{n:04d}" for n in range(1200) if n != 1100]:
        await store.mark_read(NS, session_id, "ops", up_to=None, now=NOW)
    found, totals, exact = await walk(store, None, ListFilter(reader="ops", unread=True), 50)
    assert [i["id"] for i in found] == ["s1100"]
    assert len(totals) >= 3


async def test_a_session_read_to_its_end_until_its_next_message(store: SessionStore) -> None:
    """read_to_end names the readers whose marks reach the count: a message takes them
    out, a mark short of the end too, and the counts and `check` follow."""
    for session_id in ("a", "b"):
        await store.add_message(
            NS, session_id, MessageIn("m1", "user", "hi", NOW, None, "web"), now=NOW
        )
    for reader in ("ops", "q*a->x"):
        await store.mark_read(NS, "a", reader, up_to=None, now=NOW)
    await store.mark_read(NS, "b", "ops", up_to=None, now=NOW)
    record = await store._redis.hgetall(keys_of(NS).session("a"))
    assert sorted(orjson.loads(record[b"read_to_end"])) == ["ops", "q*a->x"]
    assert (await store.counts(NS, now=NOW, reader="ops")).as_dict()["unread"] == 0
    await store.add_message(NS, "a", MessageIn("m2", "user", "hi", NOW, None, "web"), now=NOW)
    record = await store._redis.hgetall(keys_of(NS).session("a"))
    assert b"read_to_end" not in record
    for reader, unread in (("ops", 1), ("q*a->x", 2)):
        assert (await store.counts(NS, now=NOW, reader=reader)).as_dict()["unread"] == unread
    await store.mark_read(NS, "b", "ops", up_to=0, now=NOW)
    assert b"read_to_end" not in await store._redis.hgetall(keys_of(NS).session("b"))
    assert (await store.counts(NS, now=NOW, reader="ops")).as_dict()["unread"] == 2
    assert (await InvariantChecker(store._redis).check(NS)).problems == []


async def test_a_readers_unread_counts_on_every_page_path(store: SessionStore) -> None:
    """A reader's page is read by SORT, by page.lua for the inactive sessions, and by
    page.lua again after a cursor whose session has moved: each gives every item its
    unread count."""
    for n in range(6):
        for k in range(n + 1):
            message = MessageIn(f"m{k}", "user", "hi", NOW - ACTIVE_WINDOW_MS * 2 + n, None, "web")
            await store.add_message(NS, f"s{n}", message, now=NOW)
    reader = "q*a->x"
    for n in range(6):
        await store.mark_read(NS, f"s{n}", reader, up_to=n // 2, now=NOW)
    unread = {f"s{n}": n + 1 - n // 2 for n in range(6)}
    f = ListFilter(reader=reader)
    for active in (None, False):
        page = await store.list_sessions(NS, limit=3, now=NOW, filters=f, active=active)
        items = orjson.loads(b"[%b]" % page.items_json)
        assert {i["id"]: i["unread_count"] for i in items} == {
            i: unread[i] for i in ("s5", "s4", "s3")
        }
    assert page.next_cursor is not None
    # s3, the cursor's session, moves to the top: the next page is page.lua's.
    late = MessageIn("m9", "user", "hi", NOW - ACTIVE_WINDOW_MS * 2 + 10, None, "web")
    await store.add_message(NS, "s3", late, now=NOW)
    page = await store.list_sessions(NS, limit=3, now=NOW, filters=f, cursor=page.next_cursor)
    items = orjson.loads(b"[%b]" % page.items_json)
    assert {i["id"]: i["unread_count"] for i in items} == {i: unread[i] for i in ("s2", "s1", "s0")}


async def test_filters_through_the_api(api: Api) -> None:
    await api.ingest("a", id="1", channel="web", user="alice")
    await api.ingest("b", id="1", channel="tg", user="alice")
    await api.call("PATCH", "/api/sessions/b", json={"tags": ["vip"], "pinned": True})
    status, body = await api.call("GET", "/api/sessions?user=alice")
    assert [s["id"] for s in body["sessions"]] == ["b", "a"] and body["total"] == 2
    status, body = await api.call("GET", "/api/sessions?tag=vip&channel=tg")
    assert [s["id"] for s in body["sessions"]] == ["b"] and body["total_exact"] is False
    status, body = await api.call("GET", "/api/sessions?tag=vip&channel=tg&offset=1")
    assert status == 422 and "cursor" in body["detail"]
    status, body = await api.call("POST", "/api/sessions/a/read", json={"reader": "ops"})
    assert status == 200
    status, body = await api.call("GET", "/api/sessions?reader=ops")
    assert {s["id"]: s["unread_count"] for s in body["sessions"]} == {"a": 0, "b": 1}
    status, body = await api.call("GET", "/api/sessions?reader=ops&unread=true")
    assert [s["id"] for s in body["sessions"]] == ["b"]
    status, counts = await api.call("GET", "/api/sessions/counts?reader=ops")
    assert counts["unread"] == 1 and counts["channels"]["web"]["unread"] == 0
    assert counts["tags"] == {"vip": 1} and counts["pinned"] == 1
    for query, words in [
        ("archived=maybe", "archived must be true, false or any"),
        ("pinned=2", "pinned must be true or false"),
        ("tag=no%20spaces", "tag must be 1 to 64"),
        ("unread=true", "needs reader"),
        ("reader=" + "x" * 65, "reader must be"),
    ]:
        status, body = await api.call("GET", f"/api/sessions?{query}")
        assert status == 422 and words in body["detail"], query
    for body, words in [
        ({}, "reader must be"),
        ({"reader": "ops", "message_count": -1}, "message_count must be"),
        ({"reader": "ops", "message_count": True}, "message_count must be"),
    ]:
        status, answer = await api.call("POST", "/api/sessions/a/read", json=body)
        assert status == 422 and words in answer["detail"]
    status, _ = await api.call("POST", "/api/sessions/nope/read", json={"reader": "ops"})
    assert status == 404
