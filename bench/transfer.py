"""python -m bench transfer [--sessions 200] [--messages 500]

Moving data in and out (SPEC §9, issue 23): messages a second of the NDJSON export,
of the NDJSON import into an empty Redis, and of the PocketPaw import of a store
written in PocketPaw's own layout, each through the same code as the commands, with
the service's redis-server on this machine (no persistence). The targets are absolute
rates, set against a Redis on the same host: export 100 k, NDJSON import 50 k and
PocketPaw import 20 k messages a second.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from service.importers.pocketpaw import PocketPawStore
from service.models import parse_message
from service.ndjson import NamespaceExport
from service.progress import Bar
from service.store import SessionStore
from service.transfer import import_ndjson, import_pocketpaw

from .servers import RedisServer

# Epoch seconds of the messages' first timestamp, and of "now" for the export.
BASE = 1_767_225_600
NOW_MS = (BASE + 86_400) * 1000
TARGETS = {"export": 100_000, "import ndjson": 50_000, "import pocketpaw": 20_000}


@dataclass(frozen=True, slots=True)
class Rate:
    case: str
    messages: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.messages / self.seconds


def message(session: int, position: int) -> Any:
    return parse_message(
        {
            "role": ("user", "assistant")[position % 2],
            "content": f"session {session} message {position} " + "y" * (position % 50),
            "timestamp": BASE + session * 1000 + position,
            "channel": ("telegram", "web", "slack", "discord")[session % 4],
        },
        max_content_bytes=1 << 20,
        max_metadata_bytes=1 << 16,
        received_ms=NOW_MS,
    )


def write_pocketpaw_store(root: Path, sessions: int, messages: int) -> None:
    """A store as PocketPaw 0.4 lays it out: sessions/<key>.json and _index.json."""
    folder = root / "sessions"
    folder.mkdir(parents=True)
    index = {}
    for n in range(sessions):
        key = f"telegram_{100_000 + n}"
        turns: list[dict[str, Any]] = [
            {
                "id": f"{n}-{k}",
                "role": ("user", "assistant")[k % 2],
                "content": f"message {k} of session {n} " + "z" * (k % 60),
                "timestamp": f"2026-03-02T{9 + k // 3600:02d}:{k // 60 % 60:02d}:{k % 60:02d}",
                "metadata": {},
            }
            for k in range(messages)
        ]
        (folder / f"{key}.json").write_bytes(orjson.dumps(turns))
        index[key] = {
            "title": f"Session {n}",
            "channel": "telegram",
            "created": "2026-03-02T09:00:00",
            "last_activity": "2026-03-02T23:00:00",
            "message_count": messages,
            "preview": "",
        }
    (folder / "_index.json").write_bytes(orjson.dumps(index))


async def measure(url: str, workdir: Path, sessions: int, messages: int) -> list[Rate]:
    client = Redis.from_url(url)
    store = SessionStore(client, active_window_ms=900_000, timeout=10.0)
    try:
        for first in range(0, sessions, 10):
            items = [
                (f"bulk-{n:04d}", message(n, k))
                for n in range(first, min(first + 10, sessions))
                for k in range(messages)
            ]
            await store.add_messages("default", items, now=NOW_MS)
        total = sessions * messages
        started = time.perf_counter()
        data = b"".join(
            [chunk async for chunk in NamespaceExport(store, "default", now_ms=NOW_MS).chunks()]
        )
        rates = [Rate("export", total, time.perf_counter() - started)]
        await client.flushall()
        problems: list[str] = []
        started = time.perf_counter()
        with Bar("import", "session", shown=False) as bar:
            _, summary = await import_ndjson(store, io.BytesIO(data), None, bar, problems)
        rates.append(
            Rate("import ndjson", summary.messages_imported, time.perf_counter() - started)
        )
        root = workdir / "pocketpaw"
        write_pocketpaw_store(root, sessions, messages)
        started = time.perf_counter()
        with Bar("import", "session", shown=False) as bar:
            imported = await import_pocketpaw(store, PocketPawStore(root), "paw", bar, problems)
        rates.append(
            Rate("import pocketpaw", imported.messages_imported, time.perf_counter() - started)
        )
        if problems:
            raise RuntimeError(f"the bench's own data had problems: {problems[:3]}")
        return rates
    finally:
        await store.aclose()
        await client.aclose()


def table(rates: list[Rate]) -> str:
    lines = [
        "| case | messages | seconds | messages/s | target | met |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for rate in rates:
        target = TARGETS[rate.case]
        lines.append(
            f"| {rate.case} | {rate.messages:,} | {rate.seconds:.2f} | {rate.per_second:,.0f} "
            f"| {target:,} | {'yes' if rate.per_second >= target else 'no'} |"
        )
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench transfer", description=__doc__)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--messages", type=int, default=500, help="per session")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="chatsessions-bench-transfer-"))
    redis_server = RedisServer(workdir / "redis")
    try:
        redis_server.start()
        rates = asyncio.run(measure(redis_server.url, workdir, args.sessions, args.messages))
    finally:
        redis_server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(table(rates))
