"""``chatsessions import``: an NDJSON export restored after a wipe gives back the same
list, sessions and histories, and a PocketPaw store comes in listed as PocketPaw lists
it; both idempotent (service/transfer.py over SessionStore.restore_sessions)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import pty
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fault_proxy import FaultProxy
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from service.importers.pocketpaw import PocketPawStore
from service.models import parse_message
from service.ndjson import NamespaceExport
from service.progress import Bar
from service.store import InvariantChecker, RedisClient, SessionStore
from service.transfer import ImportSummary, import_ndjson, import_pocketpaw

from conftest import ACTIVE_WINDOW_MS, snapshot
from redis_process import RedisProcess

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data" / "pocketpaw"
BASE = 1_767_225_600  # 2026-01-01T00:00:00Z
NOW_MS = (BASE + 86_400) * 1000
# A hang guard for the subprocesses, never an assertion on speed.
GUARD = 60.0


def message(content: str, at: float, *, role: str = "user", **fields: Any) -> Any:
    return parse_message(
        {"role": role, "content": content, "timestamp": at, **fields},
        max_content_bytes=1 << 20,
        max_metadata_bytes=1 << 16,
        received_ms=NOW_MS,
    )


async def fill(store: SessionStore, namespace: str = "default") -> None:
    """Sessions on several channels, auto and user titles, metadata on sessions and
    messages, an empty session and one long enough for several restore calls."""
    items = []
    for n in range(30):
        session_id = f"chat-{n}"
        channel = ("telegram", "web", "slack")[n % 3]
        for k in range(4):
            role = "user" if k % 2 == 0 else "assistant"
            extra = {"metadata": {"k": k}} if k == 1 else {}
            items.append(
                (
                    session_id,
                    message(
                        f"{session_id} says {k} ünï 🙂",
                        BASE + n * 60 + k,
                        role=role,
                        channel=channel,
                        **extra,
                    ),
                )
            )
    await store.add_messages(namespace, items, now=NOW_MS)
    await store.rename_session(namespace, "chat-4", "Named by a person", now=NOW_MS)
    await store.rename_session(namespace, "chat-7", "Also renamed", now=NOW_MS)
    await store.create_session(
        namespace, "empty", channel="discord", title=None, metadata={"team": "a"}, now=NOW_MS
    )
    await store.create_session(
        namespace, "titled", channel="web", title="Given at creation", metadata=None, now=NOW_MS
    )
    long = [
        ("long", message(f"{k:05d} " + "x" * 600, BASE + 7200 + k, channel="web"))
        for k in range(700)
    ]
    await store.add_messages(namespace, long, now=NOW_MS)


async def answers(store: SessionStore, namespace: str = "default") -> dict[str, Any]:
    """What the API answers for the namespace: every list page (all, and per channel),
    every session and its whole history."""
    found: dict[str, Any] = {"list": [], "sessions": {}, "histories": {}}
    for channel in (None, "telegram", "web", "slack", "discord"):
        cursor = None
        for _ in range(100):
            page = await store.list_sessions(
                namespace, limit=7, now=NOW_MS, cursor=cursor, channel=channel
            )
            body = orjson.loads(page.json())
            found["list"].append(body)
            cursor = body["next_cursor"]
            if cursor is None:
                break
    for page in found["list"]:
        for item in page["sessions"]:
            session = await store.get_session(namespace, item["id"], now=NOW_MS)
            found["sessions"][item["id"]] = session.as_dict()
            history: list[dict[str, Any]] = []
            before = None
            for _ in range(100):
                got = await store.history(namespace, item["id"], limit=50, before=before)
                history = [m.as_dict() for m in got.messages] + history
                before = got.next_cursor
                if before is None:
                    break
            found["histories"][item["id"]] = history
    return found


@pytest.fixture
async def real(redis_server: RedisProcess) -> AsyncIterator[tuple[SessionStore, Redis]]:
    client = Redis.from_url(redis_server.url)
    await client.flushall()
    store = SessionStore(client, active_window_ms=ACTIVE_WINDOW_MS)
    yield store, client
    await store.aclose()
    await client.aclose()


async def export(store: SessionStore) -> bytes:
    chunks = NamespaceExport(store, "default", now_ms=NOW_MS).chunks()
    return b"".join([chunk async for chunk in chunks])


async def restore(store: SessionStore, data: bytes) -> tuple[ImportSummary, list[str]]:
    problems: list[str] = []
    with Bar("import", "session", shown=False) as bar:
        namespace, summary = await import_ndjson(store, io.BytesIO(data), None, bar, problems)
    assert namespace == "default"
    return summary, problems


@pytest.mark.real
async def test_export_wipe_import_gives_everything_back(
    real: tuple[SessionStore, Redis],
) -> None:
    store, client = real
    await fill(store)
    before = await answers(store)
    assert before["sessions"]["chat-4"]["title_source"] == "user"
    assert before["sessions"]["empty"]["metadata"] == {"team": "a"}
    data = await export(store)
    await client.flushall()
    summary, problems = await restore(store, data)
    assert problems == []
    assert (summary.sessions_imported, summary.messages_imported) == (33, 30 * 4 + 700)
    assert (summary.sessions_present, summary.messages_present) == (0, 0)
    assert await answers(store) == before
    assert (await InvariantChecker(client).check("default")).problems == []
    # Again: everything is there already, and not one key changes.
    once = await snapshot(client)
    again, problems = await restore(store, data)
    assert problems == []
    assert (again.sessions_imported, again.messages_imported) == (0, 0)
    assert (again.sessions_present, again.messages_present) == (33, 30 * 4 + 700)
    assert await snapshot(client) == once
    # The export of the restored namespace is the export restored.
    assert await export(store) == data


async def test_a_bad_line_is_named_and_skipped(store: SessionStore) -> None:
    await fill(store)
    lines = (await export(store)).splitlines(keepends=True)
    lines[3] = b'{"id": "broken", "channel": "web"\n'
    data = b"".join(lines)
    await store.delete_session("default", orjson.loads(lines[2])["id"])
    summary, problems = await restore(store, data)
    assert len(problems) == 1 and problems[0].startswith("line 4: not valid JSON")
    assert problems[0].endswith("; skipped")
    assert (summary.sessions_imported, summary.sessions_present, summary.sessions_skipped) == (
        1,
        31,
        1,
    )


def pocketpaw_list(name: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = json.loads((DATA / f"{name}.pocketpaw.json").read_text())[
        "list"
    ]["sessions"]
    return listed


async def listed(store: SessionStore, namespace: str) -> list[dict[str, Any]]:
    """GET /api/sessions's items, every page."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        page = orjson.loads(
            (await store.list_sessions(namespace, limit=5, now=NOW_MS, cursor=cursor)).json()
        )
        items += page["sessions"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    return items


async def bring_in(store: SessionStore, name: str) -> tuple[ImportSummary, list[str]]:
    problems: list[str] = []
    with Bar("import", "session", shown=False) as bar:
        summary = await import_pocketpaw(store, PocketPawStore(DATA / name), "paw", bar, problems)
    return summary, problems


async def test_pocketpaw_normal_store_lists_as_pocketpaw_lists_it(
    store: SessionStore, redis_client: RedisClient
) -> None:
    summary, problems = await bring_in(store, "normal")
    assert problems == []
    theirs = pocketpaw_list("normal")
    ours = await listed(store, "paw")
    assert [s["id"] for s in ours] == [s["id"] for s in theirs]
    assert [s["title"] for s in ours] == [" ".join(s["title"].split()) for s in theirs]
    assert [s["message_count"] for s in ours] == [s["message_count"] for s in theirs]
    assert [s["channel"] for s in ours] == [s["channel"] for s in theirs]
    renamed = {s["id"] for s in theirs if "user_title" in s}
    sources = {
        s["id"]: (await store.get_session("paw", s["id"], now=NOW_MS)).title_source for s in ours
    }
    assert renamed and {i for i, source in sources.items() if source == "user"} == renamed
    messages = sum(s["message_count"] for s in theirs)
    assert (summary.sessions_imported, summary.messages_imported) == (len(theirs), messages)
    assert (summary.sessions_skipped, summary.messages_skipped) == (0, 0)
    assert (await InvariantChecker(redis_client).check("paw")).problems == []
    once = await snapshot(redis_client)
    again, problems = await bring_in(store, "normal")
    assert problems == []
    assert (again.sessions_imported, again.messages_imported) == (0, 0)
    assert (again.sessions_present, again.messages_present) == (len(theirs), messages)
    assert await snapshot(redis_client) == once


async def test_pocketpaw_odd_store_imports_what_it_can(
    store: SessionStore, redis_client: RedisClient
) -> None:
    summary, problems = await bring_in(store, "odd")
    read = {r.id: r for r in PocketPawStore(DATA / "odd").sessions()}
    theirs = [s for s in pocketpaw_list("odd") if s["id"] in read]
    ours = await listed(store, "paw")
    assert [s["id"] for s in ours] == [s["id"] for s in theirs]
    assert [s["title"] for s in ours] == [" ".join(s["title"].split()) for s in theirs]
    # A message with a role chatsessions does not take is left out, with its line.
    assert [s["message_count"] for s in ours] == [len(read[s["id"]].messages) for s in theirs]
    for item in theirs:
        odd_messages = [p for p in problems if p.startswith(f"sessions/{item['id']}.json:")]
        assert len(read[item["id"]].messages) == item["message_count"] - len(odd_messages)
    assert summary.sessions_imported == len(theirs)
    assert summary.sessions_skipped == sum(1 for p in problems if "; skipped" in p)
    assert summary.sessions_skipped >= 4
    assert summary.messages_skipped == sum(1 for p in problems if p.endswith("message skipped"))
    assert summary.messages_skipped >= 1
    assert (await InvariantChecker(redis_client).check("paw")).problems == []
    again, _ = await bring_in(store, "odd")
    assert (again.sessions_imported, again.messages_imported) == (0, 0)
    assert again.sessions_present == len(theirs)
    assert again.messages_present == summary.messages_imported


async def run_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    """``chatsessions import ARGS`` in a subprocess, from a thread (it blocks)."""
    return await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "service", "import", *args],
        capture_output=True,
        env=cli_env(),
        timeout=GUARD,
    )


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATSESSIONS_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


@pytest.mark.real
async def test_cli_imports_quietly_without_a_terminal_and_names_bad_lines(
    real: tuple[SessionStore, Redis], tmp_path: Path
) -> None:
    store, client = real
    await fill(store)
    before = await answers(store)
    lines = (await export(store)).splitlines(keepends=True)
    await client.flushall()
    source = tmp_path / "backup.ndjson"
    source.write_bytes(b"".join([*lines, b"not json\n"]))
    done = await run_cli("ndjson", "--redis-url", redis_server_url(client), str(source))
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""
    assert done.stderr.decode().startswith(f"  - line {len(lines) + 1}: not valid JSON")
    assert await answers(store) == before
    # PocketPaw from the command line, into a namespace of its own.
    done = await run_cli(
        "pocketpaw",
        "--redis-url",
        redis_server_url(client),
        "--namespace",
        "paw",
        str(DATA / "normal"),
    )
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == (b"", b"")
    assert [s["id"] for s in await listed(store, "paw")] == [
        s["id"] for s in pocketpaw_list("normal")
    ]


def redis_server_url(client: Redis) -> str:
    kwargs = client.connection_pool.connection_kwargs
    return f"redis://{kwargs['host']}:{kwargs['port']}/0"


@pytest.mark.real
def test_cli_import_on_a_terminal_shows_a_summary(redis_server: RedisProcess) -> None:
    with SyncRedis.from_url(redis_server.url) as flushing:
        flushing.flushall()
    listed_by_pocketpaw = pocketpaw_list("normal")
    messages = sum(s["message_count"] for s in listed_by_pocketpaw)
    for imported, present in ((len(listed_by_pocketpaw), 0), (0, len(listed_by_pocketpaw))):
        main, terminal = pty.openpty()
        try:
            process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "service", "import", "pocketpaw"),
                    *("--redis-url", redis_server.url, str(DATA / "normal")),
                ],
                stdout=terminal,
                stderr=subprocess.PIPE,
                env={**cli_env(), "COLUMNS": "300", "TERM": "xterm"},
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
            assert process.wait(timeout=GUARD) == 0
        finally:
            os.close(main)
        summary = (
            f"imported {imported} sessions and {messages if imported else 0:,} messages from "
            f"{DATA / 'normal'} into namespace default; already present: {present} sessions "
            f"and {0 if imported else messages:,} messages; skipped: 0 sessions and 0 messages"
        )
        assert summary in shown.decode(errors="replace"), shown


@pytest.mark.real
async def test_cli_import_stops_cleanly_on_ctrl_c_and_a_rerun_finishes(
    fault_proxy: FaultProxy, redis_server: RedisProcess
) -> None:
    """SIGINT while the import waits on Redis: the run ends with its line and status
    130, and running it again brings in the whole store."""
    listed_by_pocketpaw = pocketpaw_list("normal")
    held = fault_proxy.hold(lambda arguments: any(a.upper() == b"EVALSHA" for a in arguments[:1]))
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "service", "import", "pocketpaw"),
        *("--redis-url", fault_proxy.url, "--namespace", "paw", str(DATA / "normal")),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(),
    )
    deadline = time.monotonic() + GUARD
    while held.fired == 0:
        assert time.monotonic() < deadline, "the import never reached Redis"
        await asyncio.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = await asyncio.wait_for(process.communicate(), GUARD)
    fault_proxy.release()
    assert process.returncode == 130, stderr
    assert stderr.decode() == (
        "import interrupted; what was imported stays, and running it again resumes\n"
    )
    assert stdout == b""
    done = await run_cli(
        "pocketpaw", "--redis-url", redis_server.url, "--namespace", "paw", str(DATA / "normal")
    )
    assert done.returncode == 0, done.stderr
    client = Redis.from_url(redis_server.url)
    store = SessionStore(client, active_window_ms=ACTIVE_WINDOW_MS)
    try:
        ours = await listed(store, "paw")
        assert [(s["id"], s["message_count"]) for s in ours] == [
            (s["id"], s["message_count"]) for s in listed_by_pocketpaw
        ]
        assert (await InvariantChecker(client).check("paw")).problems == []
    finally:
        await store.aclose()
        await client.aclose()


@pytest.mark.real
async def test_round_trip_at_100k_messages(real: tuple[SessionStore, Redis]) -> None:
    """200 sessions of 500 messages each: export, wipe, import gives the same export
    back (every session, title, count and message), and importing again writes
    nothing."""
    store, client = real
    for first in range(0, 200, 10):
        items = [
            (
                f"bulk-{n:03d}",
                message(
                    f"session {n} message {k} " + "y" * (k % 50),
                    BASE + n * 1000 + k,
                    role=("user", "assistant")[k % 2],
                    channel=("telegram", "web", "slack", "discord")[n % 4],
                ),
            )
            for n in range(first, first + 10)
            for k in range(500)
        ]
        await store.add_messages("default", items, now=NOW_MS)
    for n in range(0, 200, 7):
        await store.rename_session("default", f"bulk-{n:03d}", f"Renamed {n}", now=NOW_MS)
    data = await export(store)
    assert data.count(b"\n") == 201
    await client.flushall()
    summary, problems = await restore(store, data)
    assert problems == []
    assert (summary.sessions_imported, summary.messages_imported) == (200, 100_000)
    assert await export(store) == data
    assert (await InvariantChecker(client).check("default")).problems == []
    count_before = await client.dbsize()
    again, _ = await restore(store, data)
    assert (again.sessions_present, again.messages_present) == (200, 100_000)
    assert (again.sessions_imported, again.messages_imported) == (0, 0)
    assert await export(store) == data
    assert await client.dbsize() == count_before
