"""NDJSON export (service/ndjson.py): what it writes reads back through its parser as
the store holds it; ``GET /api/export`` streams it from a served app; ``chatsessions
export`` writes it to a file or standard output, quiet without a terminal, with a
summary on one, and stops cleanly on Ctrl-C."""

from __future__ import annotations

import asyncio
import io
import os
import pty
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from fault_proxy import LOADING, FaultProxy, named
from redis.asyncio import Redis

from service import deadlines
from service.app import create_app, make_runner
from service.importers import SessionRecord
from service.models import format_time, parse_message
from service.ndjson import (
    FORMAT,
    LIST_PAGE,
    NamespaceExport,
    NdjsonError,
    NdjsonReader,
    parse_header,
    parse_session,
)
from service.settings import Settings
from service.store import PAGE_BYTES, RedisClient, SessionNotFound, SessionStore

from conftest import ACTIVE_WINDOW_MS, CHANNEL_IDS, Api, Tokens, quote
from redis_process import RedisProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
# 2026-01-01T00:00:00Z: message times are set from here, so updated_at is known.
BASE = 1_767_225_600
NOW_MS = (BASE + 86_400) * 1000
# A hang guard for the subprocesses and sockets below, never an assertion on speed.
GUARD = 60.0
POLL = 0.05


def message(content: str, at: float, *, role: str = "user", **fields: Any) -> Any:
    return parse_message(
        {"role": role, "content": content, "timestamp": at, "channel": "web", **fields},
        max_content_bytes=1 << 20,
        max_metadata_bytes=1 << 16,
        received_ms=NOW_MS,
    )


async def fill(store: SessionStore, namespace: str = "default") -> None:
    """Sessions of every id shape, a user-set title, metadata, an empty session and a
    long session whose messages fill several pages by count and by bytes."""
    items = []
    for n, session_id in enumerate(CHANNEL_IDS):
        for k in range(3):
            role = "user" if k % 2 == 0 else "assistant"
            items.append(
                (session_id, message(f"{session_id} says {k} ünï 🙂", BASE + n * 60 + k, role=role))
            )
    items.append(("meta", message("with metadata", BASE + 5, metadata={"lang": "fr", "n": [1]})))
    await store.add_messages(namespace, items, now=NOW_MS)
    await store.rename_session(namespace, CHANNEL_IDS[2], "Named by a person", now=NOW_MS)
    await store.create_session(
        namespace, "empty", channel="slack", title=None, metadata={"team": "a"}, now=NOW_MS
    )
    long = [("long", message(f"{k:05d} " + "x" * 600, BASE + 3600 + k)) for k in range(1100)]
    for first in range(0, len(long), 500):
        await store.add_messages(namespace, long[first : first + 500], now=NOW_MS)


async def export_bytes(
    store: SessionStore, namespace: str = "default", since: int | None = None
) -> tuple[list[bytes], NamespaceExport]:
    export = NamespaceExport(store, namespace, now_ms=NOW_MS, updated_since_ms=since)
    return [chunk async for chunk in export.chunks()], export


async def listed_ids(store: SessionStore, namespace: str = "default") -> list[str]:
    ids: list[str] = []
    cursor = None
    while True:
        page = orjson.loads(
            (await store.list_sessions(namespace, limit=100, now=NOW_MS, cursor=cursor)).json()
        )
        ids.extend(item["id"] for item in page["sessions"])
        cursor = page["next_cursor"]
        if cursor is None:
            return ids


async def all_messages(store: SessionStore, session_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while True:
        total, page = await store.messages_from("default", session_id, first=len(found), count=97)
        found.extend(m.as_dict() for m in page)
        if len(found) >= total:
            return found


def as_api(record: SessionRecord) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A parsed session in the API's terms, to compare with what the store answers."""
    fields = {
        "id": record.id,
        "title": record.title,
        "title_source": record.title_source,
        "channel": record.channel,
        "created_at": format_time(record.created_at_ms),
        "updated_at": format_time(record.updated_at_ms),
        "metadata": record.metadata or {},
    }
    messages = [
        {
            "id": m.id,
            "role": m.role,
            "content": m.content,
            "timestamp": format_time(m.timestamp_ms),
            "metadata": m.metadata or {},
        }
        for m in record.messages
    ]
    return fields, messages


async def test_export_reads_back_as_the_store_holds_it(store: SessionStore) -> None:
    await fill(store)
    chunks, export = await export_bytes(store)
    reader = NdjsonReader(io.BytesIO(b"".join(chunks)))
    assert reader.header == parse_header(chunks[0])
    assert (reader.header.namespace, reader.header.version) == ("default", 1)
    assert (reader.header.exported_at_ms, reader.header.updated_since_ms) == (NOW_MS, None)
    records = list(reader.sessions())
    assert reader.problems == []
    assert [r.id for r in records] == await listed_ids(store)
    assert len(records) == len(CHANNEL_IDS) + 3 == export.sessions == export.total
    for record in records:
        fields, messages = as_api(record)
        stored = (await store.get_session("default", record.id, now=NOW_MS)).as_dict()
        assert fields == {name: stored[name] for name in fields}
        assert messages == await all_messages(store, record.id)
    by_id = {r.id: r for r in records}
    assert by_id[CHANNEL_IDS[2]].title_source == "user"
    assert by_id["empty"].messages == [] and by_id["empty"].metadata == {"team": "a"}
    assert by_id["meta"].messages[0].metadata == {"lang": "fr", "n": [1]}
    assert len(by_id["long"].messages) == 1100 == export.messages - 3 * len(CHANNEL_IDS) - 1
    # Bounded steps: the long session (about 700 KB) came a page at a time.
    assert max(len(chunk) for chunk in chunks) <= 2 * PAGE_BYTES
    assert sum(len(c) for c in chunks) > 3 * PAGE_BYTES


async def test_more_sessions_than_a_list_page_each_once_in_order(store: SessionStore) -> None:
    count = LIST_PAGE + 120
    items = [(f"s{n:04d}", message(f"m{n}", BASE + n)) for n in range(count)]
    for first in range(0, count, 500):
        await store.add_messages("default", items[first : first + 500], now=NOW_MS)
    chunks, _ = await export_bytes(store)
    records = list(NdjsonReader(io.BytesIO(b"".join(chunks))).sessions())
    assert [r.id for r in records] == [f"s{n:04d}" for n in reversed(range(count))]


async def test_updated_since_keeps_sessions_updated_at_or_after_it(store: SessionStore) -> None:
    items = [(f"s{n}", message("hi", BASE + n * 60)) for n in range(10)]
    await store.add_messages("default", items, now=NOW_MS)
    since = (BASE + 5 * 60) * 1000
    chunks, export = await export_bytes(store, since=since)
    reader = NdjsonReader(io.BytesIO(b"".join(chunks)))
    assert reader.header.updated_since_ms == since
    assert [r.id for r in reader.sessions()] == ["s9", "s8", "s7", "s6", "s5"]
    assert export.sessions == 5 and export.total == 10


async def test_a_namespace_exports_only_its_own(store: SessionStore) -> None:
    await store.add_messages("default", [("mine", message("a", BASE))], now=NOW_MS)
    await store.add_messages("other", [("theirs", message("b", BASE))], now=NOW_MS)
    chunks, _ = await export_bytes(store, "other")
    reader = NdjsonReader(io.BytesIO(b"".join(chunks)))
    assert reader.header.namespace == "other"
    assert [r.id for r in reader.sessions()] == ["theirs"]


async def test_an_empty_namespace_is_its_header_alone(store: SessionStore) -> None:
    chunks, export = await export_bytes(store)
    assert len(chunks) == 1 and chunks[0].endswith(b"\n")
    assert orjson.loads(chunks[0])["format"] == FORMAT
    assert (export.total, export.sessions) == (0, 0)


async def test_sessions_deleted_while_exported(store: SessionStore) -> None:
    """A session deleted once listed is left out; one deleted during its messages ends
    its line with those read before, and the line is still valid."""
    long = [("long", message(f"{k} " + "y" * 1000, BASE + 100 + k)) for k in range(600)]
    await store.add_messages("default", long[:500], now=NOW_MS)
    await store.add_messages("default", long[500:], now=NOW_MS)
    await store.add_messages("default", [("gone", message("bye", BASE))], now=NOW_MS)
    export = NamespaceExport(store, "default", now_ms=NOW_MS)
    chunks = []
    async for chunk in export.chunks():
        chunks.append(chunk)
        if len(chunks) == 3:  # header, the long session's head, its first page
            await store.delete_session("default", "long")
            await store.delete_session("default", "gone")
    (record,) = NdjsonReader(io.BytesIO(b"".join(chunks))).sessions()
    assert record.id == "long" and 0 < len(record.messages) < 600
    assert [m.content for m in record.messages] == [c.content for _, c in long][
        : len(record.messages)
    ]
    with pytest.raises(SessionNotFound):
        await store.get_session("default", "long", now=NOW_MS)


# --- the parser ---------------------------------------------------------------------------


def session_line(**changes: Any) -> bytes:
    line: dict[str, Any] = {
        "id": "a",
        "title": "T",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:01:00.5Z",
        "channel": "web",
        "title_source": "auto",
        "metadata": {},
        "messages": [
            {
                "id": "m1",
                "role": "user",
                "content": "hi",
                "timestamp": "2026-01-01T00:00:00Z",
                "metadata": {},
            }
        ],
        "message_count": 1,
    }
    line.update(changes)
    return orjson.dumps({k: v for k, v in line.items() if v is not ...}) + b"\n"


def header(**changes: Any) -> bytes:
    fields = {
        "format": FORMAT,
        "version": 1,
        "namespace": "default",
        "exported_at": "2026-01-02T00:00:00Z",
        "updated_since": None,
    }
    fields.update(changes)
    return orjson.dumps(fields) + b"\n"


def test_a_valid_line_parses_and_unknown_fields_are_taken() -> None:
    record = parse_session(session_line(pinned=True, future={"x": 1}), 2)
    assert (record.id, record.updated_at_ms) == ("a", 1_767_225_660_500)
    assert record.messages[0].timestamp_ms == BASE * 1000 and record.metadata is None


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"id": ""}, "id: id must be 1 to 256"),
        ({"channel": "no spaces"}, "channel: channel must be"),
        ({"title": ""}, "title: title must not be empty"),
        ({"title_source": "robot"}, "title_source: must be one of default, auto, user"),
        (
            {"created_at": "2026-01-01T00:00:00"},
            "created_at: '2026-01-01T00:00:00' has no time zone",
        ),
        ({"updated_at": 1767225600}, "updated_at: must be an RFC 3339 time string"),
        ({"metadata": []}, "metadata: must be an object"),
        ({"messages": {}}, "messages: must be a list"),
        ({"messages": [{"id": "m", "role": "bot", "content": "x"}]}, "messages[0]: role must be"),
        (
            {"messages": [{"id": "m", "role": "user", "content": "x", "timestamp": "now"}]},
            "messages[0]: timestamp: 'now' is not an RFC 3339 time",
        ),
        ({"message_count": 2}, "message_count: is 2, but the line holds 1"),
        ({"message_count": ...}, "message_count: is None, but the line holds 1"),
    ],
)
def test_a_wrong_field_is_named(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises(NdjsonError) as raised:
        parse_session(session_line(**changes), 7)
    assert raised.value.line == 7
    assert str(raised.value).startswith(f"line 7: {reason}"), str(raised.value)


@pytest.mark.parametrize(
    ("first", "reason"),
    [
        (b"", "the file is empty"),
        (b"[1]\n", "not a JSON object"),
        (header(format="something-else"), "not a chatsessions export"),
        (header(version=2), "format version 2; this chatsessions reads version 1"),
        (header(namespace=""), "the header has no namespace"),
        (header(exported_at="yesterday"), "the header's times"),
    ],
)
def test_a_bad_header_refuses_the_file(first: bytes, reason: str) -> None:
    with pytest.raises(NdjsonError, match=reason):
        NdjsonReader(io.BytesIO(first + session_line() if first else b""))


def test_bad_lines_are_skipped_each_with_a_line() -> None:
    data = header() + session_line() + b"\n" + session_line(id="b", title_source="x")
    data += session_line(id="c") + session_line(id="d")[:40]  # cut short, as a failed copy
    reader = NdjsonReader(io.BytesIO(data))
    assert [r.id for r in reader.sessions()] == ["a", "c"]
    assert reader.problems[0] == "line 4: title_source: must be one of default, auto, user; skipped"
    assert reader.problems[1].startswith("line 6: not valid JSON")
    assert len(reader.problems) == 2


# --- GET /api/export ----------------------------------------------------------------------


@pytest.fixture
def settings(tokens: Tokens, tmp_path: Path) -> Settings:
    tokens.add("write-only", ("sessions:write",))
    return Settings(tokens=tuple(tokens.configs), data_dir=tmp_path / "data")


async def get_export(api: Api, query: str = "", token: str = "admin") -> tuple[int, Any, bytes]:
    headers = {"Authorization": f"Bearer {api.tokens[token]}"}
    async with api.client.get(f"/api/export{query}", headers=headers) as response:
        return response.status, response.headers, await response.read()


async def test_http_export_streams_the_namespace(api: Api, redis_client: RedisClient) -> None:
    store = SessionStore(redis_client, active_window_ms=ACTIVE_WINDOW_MS)
    await fill(store)
    status, headers, body = await get_export(api, token="reader")
    assert status == 200
    assert headers["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert headers["Content-Disposition"] == 'attachment; filename="chatsessions-default.ndjson"'
    # Streamed: chunked, no length known ahead.
    assert headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in headers
    reader = NdjsonReader(io.BytesIO(body))
    records = list(reader.sessions())
    assert reader.problems == []
    chunks, _ = await export_bytes(store)
    expected = list(NdjsonReader(io.BytesIO(b"".join(chunks))).sessions())
    assert records == expected
    status, listed = await api.call("GET", "/api/sessions?limit=500")
    assert [r.id for r in records] == [s["id"] for s in listed["sessions"]]
    await store.aclose()


async def test_http_export_updated_since(api: Api) -> None:
    for n in range(4):
        await api.ingest(f"s{n}", timestamp=BASE + n * 60)
    for since in (format_time((BASE + 120) * 1000), str(BASE + 120), "2026-01-01T00:02:00"):
        status, _, body = await get_export(api, f"?updated_since={quote(since)}")
        assert status == 200, body
        reader = NdjsonReader(io.BytesIO(body))
        assert reader.header.updated_since_ms == (BASE + 120) * 1000
        assert [r.id for r in reader.sessions()] == ["s3", "s2"]


@pytest.mark.parametrize(
    "since", ["yesterday", "", "1767225600000", "9999-01-01T00:00:00Z", "2026-13-01", "1e9"]
)
async def test_http_export_refuses_a_bad_updated_since(api: Api, since: str) -> None:
    await api.ingest("s")
    status, body = await api.call("GET", f"/api/export?updated_since={quote(since)}")
    assert status == 422
    assert "updated_since" in body["detail"]


async def test_http_export_needs_the_read_scope_and_keeps_to_its_namespace(api: Api) -> None:
    await api.ingest("mine")
    status, body = await api.call("GET", "/api/export", token="write-only")
    assert status == 403, body
    status, body = await api.call("GET", "/api/export", token=None)
    assert status == 401
    status, _, raw = await get_export(api, token="other")
    reader = NdjsonReader(io.BytesIO(raw))
    assert status == 200 and reader.header.namespace == "other"
    assert list(reader.sessions()) == []


@pytest.mark.real
async def test_http_export_when_redis_refuses_is_a_503_before_any_byte(
    fault_proxy: FaultProxy, settings: Settings, tokens: Tokens
) -> None:
    client = Redis.from_url(fault_proxy.url)
    app = create_app(replace(settings, redis_url="redis://unused"), redis_client=client)
    async with TestClient(TestServer(app)) as http:
        fault_proxy.refuse(LOADING, named("EVALSHA", "EVAL", "SORT", "ZREVRANGE", "ZCARD"))
        async with http.get("/api/export", headers=tokens.header("reader")) as response:
            assert response.status == 503, await response.text()
            assert response.headers["Retry-After"]
            assert "loading" in (await response.json())["detail"].lower()
    await client.aclose()


async def redis_calls(client: RedisClient) -> int:
    """Commands Redis has run, all kinds."""
    stats = await client.info("commandstats")
    return sum(int(entry["calls"]) for entry in stats.values())


@pytest.fixture
async def served(
    redis_client: RedisClient, settings: Settings
) -> AsyncIterator[tuple[web.AppRunner, int]]:
    app = create_app(replace(settings, client_timeout=1.0), redis_client=redis_client)
    runner = make_runner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield runner, port
    await runner.cleanup()


@pytest.mark.real
@pytest.mark.parametrize("redis_client", ["real"], indirect=True)
async def test_a_client_that_does_not_read_the_export_is_dropped(
    served: tuple[web.AppRunner, int], redis_client: RedisClient, tokens: Tokens
) -> None:
    """Back-pressure: the export reads Redis only as the client takes what it read,
    holding a few chunks at most, and a client that reads nothing is dropped."""
    store = SessionStore(redis_client, active_window_ms=ACTIVE_WINDOW_MS)
    for n in range(48):
        batch = [
            (f"big{n}", message(f"{k} " + "z" * 20_000, BASE + n * 100 + k)) for k in range(20)
        ]
        await store.add_messages("default", batch, now=NOW_MS)
    whole = await redis_calls(redis_client)
    await export_bytes(store)
    whole = await redis_calls(redis_client) - whole
    await store.aclose()
    runner, port = served
    server = runner.server
    before = await redis_calls(redis_client)
    assert server is not None
    earlier = set(server.connections)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    client.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(client, ("127.0.0.1", port))
    try:
        await loop.sock_sendall(
            client,
            f"GET /api/export HTTP/1.1\r\nHost: localhost\r\n"
            f"Authorization: Bearer {tokens['admin']}\r\n\r\n".encode(),
        )
        ours = None
        largest_buffer = 0
        deadline = time.monotonic() + GUARD
        while ours is None or ours in server.connections:
            assert time.monotonic() < deadline, "a client that never reads was never dropped"
            if ours is None:
                ours = next((c for c in server.connections if c not in earlier), None)
            elif ours.transport is not None:
                largest_buffer = max(largest_buffer, ours.transport.get_write_buffer_size())
            await asyncio.sleep(POLL)
    finally:
        client.close()
    # The export is about 19 MB; the process held a few 64 KiB pieces of it at most.
    assert largest_buffer <= 4 * deadlines.CHUNK_BYTES
    made = await redis_calls(redis_client) - before
    # And it stopped reading Redis: no more than what the buffers took.
    assert made < whole / 2


# --- chatsessions export ------------------------------------------------------------------


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "service", "export", *args]


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSESSIONS_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


def filled(url: str, namespace: str = "default") -> None:
    async def run() -> None:
        client = Redis.from_url(url)
        await client.flushall()
        store = SessionStore(client, active_window_ms=ACTIVE_WINDOW_MS)
        await fill(store, namespace)
        await store.aclose()
        await client.aclose()

    asyncio.run(run())


def files_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def read_export(data: bytes) -> tuple[NdjsonReader, list[SessionRecord]]:
    reader = NdjsonReader(io.BytesIO(data))
    return reader, list(reader.sessions())


@pytest.mark.real
def test_cli_export_to_a_file_is_quiet_without_a_terminal(
    redis_server: RedisProcess, tmp_path: Path
) -> None:
    filled(redis_server.url)
    target = tmp_path / "backup.ndjson"
    done = subprocess.run(
        cli("--redis-url", redis_server.url, str(target)),
        capture_output=True,
        env=cli_env(),
        timeout=GUARD,
    )
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == (b"", b"")
    reader, records = read_export(target.read_bytes())
    assert reader.problems == [] and reader.header.namespace == "default"
    assert len(records) == len(CHANNEL_IDS) + 3
    assert sum(len(r.messages) for r in records) == 3 * len(CHANNEL_IDS) + 1 + 1100
    assert files_in(tmp_path) == [target.name]
    # To standard output, with the same sessions; and --updated-since.
    piped = subprocess.run(
        cli("--redis-url", redis_server.url, "--updated-since", str(BASE + 3600), "-"),
        capture_output=True,
        env=cli_env(),
        timeout=GUARD,
    )
    assert piped.returncode == 0, piped.stderr
    _, since = read_export(piped.stdout)
    assert [r.id for r in since] == ["empty", "long"]  # created at NOW_MS; the latest messages


@pytest.mark.real
def test_cli_export_on_a_terminal_shows_progress_and_a_summary(
    redis_server: RedisProcess, tmp_path: Path
) -> None:
    filled(redis_server.url)
    target = tmp_path / "backup.ndjson"
    main, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            cli("--redis-url", redis_server.url, str(target)),
            stdout=terminal,
            stderr=subprocess.PIPE,
            env={**cli_env(), "COLUMNS": "100", "TERM": "xterm"},
        )
        os.close(terminal)
        shown = b""
        while True:
            try:
                piece = os.read(main, 65536)
            except OSError:  # the terminal closed: the process has ended
                break
            if not piece:
                break
            shown += piece
        assert process.wait(timeout=GUARD) == 0, process.stderr.read() if process.stderr else ""
    finally:
        os.close(main)
    text = shown.decode(errors="replace")
    summary = (
        f"exported {len(CHANNEL_IDS) + 3} sessions and {3 * len(CHANNEL_IDS) + 1101:,} "
        f"messages of namespace default to {target}"
    )
    assert summary in text, text
    assert target.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--updated-since", "yesterday"), "config error: --updated-since: T is not an RFC"),
        (("--namespace", "Not Valid"), "config error: --namespace: use 1-64"),
    ],
)
def test_cli_export_refuses_bad_arguments(args: Sequence[str], message: str) -> None:
    done = subprocess.run(
        cli("--redis-url", "redis://127.0.0.1:1/0", *args, "-"),
        capture_output=True,
        env=cli_env(),
        timeout=GUARD,
    )
    assert done.returncode == 2
    assert done.stderr.decode().startswith(message)


@pytest.mark.real
async def test_cli_export_stops_cleanly_on_ctrl_c(
    fault_proxy: FaultProxy, redis_server: RedisProcess, tmp_path: Path
) -> None:
    """SIGINT while the export waits on Redis: the run ends at once with its line, and
    leaves neither the file nor its partial copy."""
    client = Redis.from_url(redis_server.url)
    store = SessionStore(client, active_window_ms=ACTIVE_WINDOW_MS)
    await fill(store)
    await store.aclose()
    await client.aclose()
    # The long session is the most recent, read first: its replies are held.
    held = fault_proxy.hold(lambda arguments: any(b"long" in a for a in arguments[1:]))
    target = tmp_path / "backup.ndjson"
    process = await asyncio.create_subprocess_exec(
        *cli("--redis-url", fault_proxy.url, str(target)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
    )
    deadline = time.monotonic() + GUARD
    while held.fired == 0:
        assert time.monotonic() < deadline, "the export never reached the held session"
        await asyncio.sleep(POLL)
    assert files_in(tmp_path) == ["backup.ndjson.partial"]
    process.send_signal(signal.SIGINT)
    stdout, stderr = await asyncio.wait_for(process.communicate(), GUARD)
    fault_proxy.release()
    assert process.returncode == 130, stderr
    assert stderr.decode() == f"export interrupted; {target} not written\n"
    assert stdout == b""
    assert files_in(tmp_path) == []
