"""The invariant checker finds every kind of drift, and nothing on clean data."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest
from redis.asyncio import Redis
from terminal import run_shown

from service.cli import main
from service.models import MessageIn
from service.store import InvariantChecker, Keys, RedisClient, SessionStore

from redis_process import RedisProcess

NOW = 1_705_315_500_000


async def seed(store: SessionStore) -> None:
    for session_id, channel in [("a", "web"), ("b", "telegram"), ("c", "web")]:
        for n in range(3):
            message = MessageIn(f"m{n}", "user", "hi", NOW + n, None, channel)
            await store.add_message("default", session_id, message, now=NOW)
    await store.add_message("other", "x", MessageIn("m", "user", "hi", NOW, None, "web"), now=NOW)


async def test_clean_data_has_no_problems(store: SessionStore, redis_client: RedisClient) -> None:
    await seed(store)
    await store.delete_session("default", "c")
    checker = InvariantChecker(redis_client)
    assert await checker.namespaces() == ["default", "other"]
    report = await checker.check("default")
    assert report.ok, report.problems
    assert (report.sessions, report.messages) == (2, 6)


async def test_each_drift_is_reported(store: SessionStore, redis_client: RedisClient) -> None:
    await seed(store)
    keys = Keys("default")
    await redis_client.rpop(keys.messages("a"))  # count and ids now disagree with the list
    await redis_client.zrem(keys.index, "b")  # b left the index only
    await redis_client.zadd(keys.channel("web"), {"ghost": NOW})  # a stray channel entry
    await redis_client.rpush(keys.messages("gone"), b"[]")  # messages without a session
    await redis_client.zadd(keys.channel("web"), {"c": 1})  # c's channel score drifted
    report = await InvariantChecker(redis_client).check("default")
    problems = "\n".join(report.problems)
    assert "session 'a' counts 3 messages but stores 2" in problems
    assert "session 'a' has 3 message ids for 2 messages" in problems
    assert "session 'b' is missing from index" in problems
    assert "channel:web holds 'ghost' but no session has that id" in problems
    assert "messages of 'gone' remain without a session" in problems
    assert "session 'c' has another score in channel:web" in problems
    assert len(report.problems) == 6
    assert (await InvariantChecker(redis_client).check("other")).ok


@pytest.mark.real
async def test_check_command_exit_codes(
    redis_server: RedisProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(redis_server.url)
    await client.flushall()
    seeding = SessionStore(client, active_window_ms=900_000)
    await seed(seeding)
    await seeding.aclose()
    try:
        assert await _run_check(redis_server.url) == 0
        out = capsys.readouterr().out
        assert "namespace default: 3 sessions, 9 messages: ok" in out
        assert "namespace other: 1 session, 1 message: ok" in out
        await client.zrem(Keys("default").index, "a")
        assert await _run_check(redis_server.url, "--namespace", "default") == 1
        out = capsys.readouterr().out
        assert "namespace default: 3 sessions, 9 messages: 1 problem" in out
        assert "other" not in out
    finally:
        await client.aclose()


async def _run_check(url: str, *extra: str) -> int:
    import asyncio

    # main() runs its own event loop, so it goes to a thread of its own.
    return await asyncio.to_thread(main, ["check", "--redis-url", url, *extra])


def run_check(url: str, on_terminal: bool) -> tuple[int, str]:
    """`chatsessions check` as its own process, its output on a pseudo-terminal or a pipe."""
    command = [sys.executable, "-m", "service", "check", "--redis-url", url]
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    return run_shown(command, env, on_terminal)


@pytest.mark.real
async def test_check_shows_progress_on_a_terminal_and_stays_plain_without_one(
    redis_server: RedisProcess,
) -> None:
    client = Redis.from_url(redis_server.url)
    await client.flushall()
    store = SessionStore(client, active_window_ms=900_000)
    for namespace in ("alpha", "beta"):
        await store.add_message(namespace, "s", MessageIn("m", "user", "hi", 1, None, "web"), now=1)
    await store.aclose()
    await client.aclose()
    code, piped = await asyncio.to_thread(run_check, redis_server.url, False)
    assert code == 0
    assert piped == (
        "namespace alpha: 1 session, 1 message: ok\nnamespace beta: 1 session, 1 message: ok\n"
    )
    code, shown = await asyncio.to_thread(run_check, redis_server.url, True)
    assert code == 0
    assert "namespace alpha: 1 session, 1 message: ok" in shown
    # The bar drew itself with the terminal's control sequences; the pipe had none.
    assert "\x1b[" in shown
