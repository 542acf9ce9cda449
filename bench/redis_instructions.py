"""python -m bench.redis_instructions [--sessions 20000] [--calls 400]

Instructions redis-server executes per list page and per single ingest, counted by
valgrind's callgrind while the store sends them one at a time: the measure
``bench.instructions`` takes of the service, taken of Redis's side. Redis time per page
(``INFO commandstats``, in ``python -m bench``) moves with the host's load from one
run to the next, and a count hardly does, so two versions of a script can be told
apart. Like any count, it leaves out waiting on memory.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis
from redis.asyncio import Redis

from service.models import MessageIn
from service.store import SessionStore

from .__main__ import ACTIVE_WINDOW_MS, NAMESPACE, seed_sessions
from .instructions import START_TIMEOUT, Counted, counted_run
from .load import CONTENT
from .servers import free_port, redis_server_argv, wait_for_redis


class CountedRedis(Counted):
    """A redis-server under callgrind, without persistence, ready once it answers PING."""

    def __init__(self, workdir: Path) -> None:
        port = free_port()
        super().__init__(redis_server_argv(port, workdir), dict(os.environ), workdir, port)

    def start_redis(self) -> CountedRedis:
        self.start_process()
        wait_for_redis(self.port, START_TIMEOUT)
        return self


def count_calls(
    server: CountedRedis, calls: int, call: Callable[[SessionStore, int], Awaitable[object]]
) -> float:
    """Instructions per ``call(store, n)``, for n from 1 to ``calls``, sent one by one,
    after an uncounted ``call(store, 0)`` (it loads the scripts into Redis)."""

    async def drive(numbers: range) -> float:
        client = Redis(port=server.port)
        store = SessionStore(client, active_window_ms=ACTIVE_WINDOW_MS)
        try:
            for n in numbers:
                await call(store, n)
        finally:
            await store.aclose()
            await client.aclose()
        return len(numbers)

    asyncio.run(drive(range(1)))
    instructions, units = counted_run(server, lambda: asyncio.run(drive(range(1, calls + 1))))
    return instructions / units


def measure(sessions: int, calls: int, workdir: Path) -> dict[str, float]:
    server = CountedRedis(workdir).start_redis()
    try:
        now = int(time.time() * 1000)
        seed_sessions(redis.Redis(port=server.port), sessions, now)

        async def middle_cursor() -> str | None:
            client = Redis(port=server.port)
            store = SessionStore(client, active_window_ms=ACTIVE_WINDOW_MS)
            page = await store.list_sessions(NAMESPACE, limit=50, now=now, offset=sessions // 2)
            await store.aclose()
            await client.aclose()
            return page.next_cursor

        cursor = asyncio.run(middle_cursor())
        pages: dict[str, dict[str, Any]] = {
            "first page": {},
            "deep offset": {"offset": sessions // 2},
            "cursor page": {"cursor": cursor},
            "channel page": {"channel": "telegram"},
        }
        counts: dict[str, float] = {}
        for case, query in pages.items():

            async def page(store: SessionStore, n: int, query: dict[str, Any] = query) -> None:
                # A later `now` each time: no read shares another's round trip.
                await store.list_sessions(NAMESPACE, limit=50, now=now + n, **query)

            counts[case] = count_calls(server, calls, page)

        async def ingest(store: SessionStore, n: int) -> None:
            # Sessions that exist, each message later than the last: the index entries move.
            message = MessageIn(f"r{n}", "user", CONTENT, now + 1 + n, None, "web")
            await store.add_message(NAMESPACE, f"session_{n % 1000:08d}", message, now=now)

        counts["single ingest"] = count_calls(server, calls, ingest)
        return counts
    finally:
        server.stop()


def report(counts: dict[str, float], sessions: int) -> str:
    lines = [
        f"redis-server instructions per call, {sessions:,} sessions, limit=50:",
        "",
        "| case | instructions per call |",
        "|---|---:|",
    ]
    lines += [f"| {case} | {count / 1000:,.1f} k |" for case, count in counts.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.redis_instructions", description=__doc__)
    parser.add_argument("--sessions", type=int, default=20_000)
    parser.add_argument("--calls", type=int, default=400)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="chatsessions-redis-instructions-"))
    try:
        print(report(measure(args.sessions, args.calls, workdir), args.sessions))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
