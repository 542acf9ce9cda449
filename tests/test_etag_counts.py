"""ETag and 304 on the list and a session, and counts in one call, through the API on
fakeredis and a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from service.app import create_app
from service.handlers import READ_CHECKSUMS, read_checksum
from service.settings import Settings
from service.store import migrate_legacy_cards
from service.store.keys import keys_of
from service.store.migrate import LAYOUT
from service.store.types import RedisClient

from conftest import Api, Tokens, quote
from redis_process import RedisProcess


async def tagged(api: Api, path: str, tag: str | None = None) -> tuple[int, str | None, bytes]:
    headers = {"Authorization": f"Bearer {api.tokens['admin']}"}
    if tag is not None:
        headers["If-None-Match"] = tag
    async with api.client.get(path, headers=headers) as response:
        return response.status, response.headers.get("ETag"), await response.read()


async def test_list_etag_and_304(api: Api) -> None:
    await api.ingest("s1", id="m1")
    status, tag, body = await tagged(api, "/api/sessions")
    assert status == 200 and tag is not None and body
    status, again, body = await tagged(api, "/api/sessions", tag)
    assert (status, again, body) == (304, tag, b"")
    # Any write of the namespace moves the tag.
    await api.ingest("s2", id="m1")
    status, moved, body = await tagged(api, "/api/sessions", tag)
    assert status == 200 and moved != tag and b"s2" in body
    # A tag names one read: another query's tag is not this one's.
    status, other_tag, _ = await tagged(api, "/api/sessions?limit=1")
    assert status == 200 and other_tag != moved
    assert (await tagged(api, "/api/sessions?limit=1", moved))[0] == 200
    assert (await tagged(api, "/api/sessions?limit=1", other_tag))[0] == 304
    # A list of tags, a weak tag, and * all match.
    assert (await tagged(api, "/api/sessions", f'"x", W/{moved}'))[0] == 304
    assert (await tagged(api, "/api/sessions", "*"))[0] == 304


def test_read_checksums_kept_are_bounded() -> None:
    """The checksums of reads are kept for the reads seen last, never for every path a
    client ever sent."""
    first = read_checksum("ns", "/api/sessions?limit=1")
    assert read_checksum("ns", "/api/sessions?limit=1") == first
    assert read_checksum("other", "/api/sessions?limit=1") != first
    for n in range(READ_CHECKSUMS + 100):
        read_checksum("ns", f"/api/sessions?limit={n}&" + "x" * 8000)
    assert read_checksum.cache_info().currsize <= READ_CHECKSUMS


async def test_every_kind_of_write_moves_the_tag(api: Api) -> None:
    await api.ingest("s1", id="m1")
    status, _, _ = await tagged(api, "/api/sessions")
    tags = set()
    for method, path, body in [
        ("POST", "/api/sessions/s1/messages", {"role": "user", "content": "x", "id": "m2"}),
        ("PATCH", "/api/sessions/s1", {"title": "Renamed"}),
        ("POST", "/api/sessions/s1/title", {"title": "Again"}),
        ("POST", "/api/sessions", {"id": "s2", "channel": "web"}),
        (
            "POST",
            "/api/messages",
            {"messages": [{"session_id": "s2", "role": "user", "content": "y", "id": "b1"}]},
        ),
        ("DELETE", "/api/sessions/s2", None),
    ]:
        status, _ = await api.call(method, path, json=body)
        assert status in (200, 201)
        tags.add((await tagged(api, "/api/sessions"))[1])
    assert len(tags) == 6


async def test_a_session_has_its_tag(api: Api) -> None:
    session_id = "19:abc@thread.v2 100%"
    await api.ingest(session_id, id="m1")
    path = f"/api/sessions/{quote(session_id)}"
    status, tag, body = await tagged(api, path)
    assert status == 200 and tag is not None
    assert (await tagged(api, path, tag))[:2] == (304, tag)
    assert (await tagged(api, "/api/sessions", tag))[0] == 200
    status, _ = await api.call("DELETE", path)
    assert status == 200
    status, _, _ = await tagged(api, path, tag)
    assert status == 404


async def test_other_namespace_tag_differs(api: Api) -> None:
    status, tag, _ = await tagged(api, "/api/sessions")
    headers = {"Authorization": f"Bearer {api.tokens['other']}", "If-None-Match": str(tag)}
    async with api.client.get("/api/sessions", headers=headers) as response:
        assert response.status == 200
        assert response.headers["ETag"] != tag


async def test_counts(api: Api) -> None:
    await api.ingest("a", id="1", channel="web")
    await api.ingest("b", id="1", channel="telegram")
    await api.ingest("c", id="1", channel="telegram", timestamp="2020-01-01T00:00:00Z")
    status, counts = await api.call("GET", "/api/sessions/counts")
    assert status == 200
    assert counts == {
        "total": 3,
        "active": 2,
        "archived": 0,
        "pinned": 0,
        "channels": {"telegram": {"total": 2, "active": 1}, "web": {"total": 1, "active": 1}},
        "tags": {},
    }
    status, with_hours = await api.call("GET", "/api/sessions/counts?hours=24")
    assert status == 200
    activity = with_hours["activity"]
    assert len(activity["hours"]) == 24
    assert activity["channels"]["web"][-1] == 1
    assert sum(activity["channels"]["telegram"]) == 1
    for bad in ("-1", "169", "x"):
        status, body = await api.call("GET", f"/api/sessions/counts?hours={bad}")
        assert status == 422 and "hours" in body["detail"]
    status, other = await api.call("GET", "/api/sessions/counts", token="other")
    assert other["total"] == 0 and other["channels"] == {}
    status, _ = await api.call("GET", "/api/sessions/counts", token=None)
    assert status == 401


async def test_counts_learn_the_channels_of_an_earlier_release(
    api: Api, redis_client: RedisClient
) -> None:
    await api.ingest("a", id="1", channel="web")
    await api.ingest("b", id="1", channel="slack")
    keys = keys_of("default")
    # Releases before 0.3 kept no channels set and no layout mark.
    await redis_client.delete(keys.channels, keys.layout)
    _, before = await api.call("GET", "/api/sessions/counts")
    assert before["channels"] == {}
    await migrate_legacy_cards(redis_client, "default")
    _, after = await api.call("GET", "/api/sessions/counts")
    assert set(after["channels"]) == {"web", "slack"}
    assert await redis_client.get(keys.layout) == LAYOUT.encode()


@pytest.fixture
async def real_api(
    redis_server: RedisProcess, settings: Settings, tokens: Tokens
) -> AsyncIterator[Api]:
    client = Redis.from_url(redis_server.url)
    await client.flushall()
    app = create_app(replace(settings, redis_url="redis://unused"), redis_client=client)
    async with TestClient(TestServer(app)) as test_client:
        yield Api(test_client, tokens)
    await client.aclose()


@pytest.mark.real
async def test_a_304_reads_only_the_version(redis_server: RedisProcess, real_api: Api) -> None:
    api = real_api
    for n in range(30):
        await api.ingest(f"s{n}", id="m")
    status, tag, _ = await tagged(api, "/api/sessions?limit=20")
    assert status == 200
    client = Redis.from_url(redis_server.url)
    await client.config_resetstat()
    for _ in range(10):
        assert (await tagged(api, "/api/sessions?limit=20", tag))[0] == 304
    stats = await client.info("commandstats")
    await client.aclose()
    assert stats["cmdstat_get"]["calls"] == 10
    assert stats["cmdstat_zcount"]["calls"] == 20  # both halves: archived or not
    assert "cmdstat_sort" not in stats and "cmdstat_evalsha" not in stats
