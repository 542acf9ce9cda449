"""Writes tests/data/legacy-cards.json: a namespace as the release before session hashes
(cards) stored it, and what that release answered for it.

Run it from a checkout of that release (the store that wrote cards), with this
repository's tools folder on the path, against a redis-server it starts:

    git worktree add /tmp/legacy 3bd9501
    cd /tmp/legacy && python /path/to/tools/make_legacy_fixture.py OUT.json

The test of ``chatsessions migrate`` loads the keys into a fresh Redis, moves them to
hashes with this release, and compares every answer with the one recorded here.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from service.embedded import find_redis_server
from service.models import MessageIn
from service.store import SessionStore

NAMESPACE = "legacy"
NOW = 1_765_000_000_000
SESSIONS = [
    ("123456789:topic:42", "telegram", "Python prime numbers"),
    ("spaces/abc123", "google-chat", 'Ünïcödé títle with "quotes" and \\ and /'),
    ("+1234567890", "sms", "short"),
    ("!abc:matrix.org", "matrix", "x" * 300),
    ("19:abc@thread.v2", "teams", "Привет, мир"),
    ("session_plain", "web", "hello there"),
]


def message(n: int, session: int, content: str, role: str = "user") -> MessageIn:
    return MessageIn(
        id=f"m{session}-{n}",
        role=role,
        content=content,
        timestamp_ms=NOW - 3_600_000 * session + 1000 * n,
        metadata={"n": n} if n % 3 == 0 else None,
        channel=SESSIONS[session][1],
    )


def encoded(value: Any) -> str:
    assert isinstance(value, bytes), value
    return base64.b64encode(value).decode()


async def record(url: str) -> dict[str, Any]:
    client = Redis.from_url(url)
    store = SessionStore(client, active_window_ms=900_000)
    for s, (session_id, _, content) in enumerate(SESSIONS):
        for n in range(4 + s):
            role = "user" if n % 2 == 0 else "assistant"
            text = content if n == 0 else f"reply {n} to {content[:20]}"
            await store.add_message(NAMESPACE, session_id, message(n, s, text, role), now=NOW)
    await store.rename_session(NAMESPACE, "+1234567890", "Renamed by a person", now=NOW)
    await store.create_session(
        NAMESPACE, "empty-one", channel="web", title=None, metadata={"k": "v"}, now=NOW
    )
    keys: dict[str, Any] = {}
    raw: Any
    async for raw in client.scan_iter(match=f"cs:{{{NAMESPACE}}}:*"):
        key = raw.decode()
        kind_raw: Any = await client.type(key)
        kind = kind_raw.decode()
        if kind == "string":
            keys[key] = ["string", encoded(await client.get(key))]
        elif kind == "list":
            keys[key] = ["list", [encoded(v) for v in await client.lrange(key, 0, -1)]]
        elif kind == "hash":
            found = await client.hgetall(key)
            keys[key] = ["hash", {encoded(k): encoded(v) for k, v in found.items()}]
        elif kind == "zset":
            members: Any = await client.zrange(key, 0, -1, withscores=True)
            keys[key] = ["zset", [[encoded(m), int(score)] for m, score in members]]
    page = await store.list_sessions(NAMESPACE, limit=500, now=NOW)
    answers: dict[str, Any] = {
        "list": orjson.loads(page.json()),
        "sessions": {},
        "histories": {},
    }
    for item in answers["list"]["sessions"]:
        session_id = item["id"]
        session = await store.get_session(NAMESPACE, session_id, now=NOW)
        answers["sessions"][session_id] = session.as_dict()
        history = await store.history(NAMESPACE, session_id, limit=500)
        answers["histories"][session_id] = [m.as_dict() for m in history.messages]
    await store.aclose()
    await client.aclose()
    return {"namespace": NAMESPACE, "now": NOW, "keys": keys, "answers": answers}


def main(out: str) -> None:
    with tempfile.TemporaryDirectory() as directory:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        server = subprocess.Popen(
            [find_redis_server(), "--port", str(port), "--save", "", "--dir", directory],
            stdout=subprocess.DEVNULL,
        )
        try:
            time.sleep(0.5)
            fixture = asyncio.run(record(f"redis://127.0.0.1:{port}/0"))
        finally:
            server.terminate()
            server.wait()
    Path(out).write_bytes(orjson.dumps(fixture, option=orjson.OPT_INDENT_2) + b"\n")


if __name__ == "__main__":
    main(sys.argv[1])
