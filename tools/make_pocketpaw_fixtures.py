"""Writes tests/data/pocketpaw/: PocketPaw memory stores made by PocketPaw's own code.

Run once, with the real package, in a throwaway environment (never the project's):

    python3 -m venv /tmp/ppvenv && /tmp/ppvenv/bin/pip install 'pocketpaw>=0.4,<0.5'
    HOME=$(mktemp -d) /tmp/ppvenv/bin/python tools/make_pocketpaw_fixtures.py tests/data/pocketpaw

and commit what it writes, so that the tests and CI never need PocketPaw installed.

Each store is a folder laid out as PocketPaw lays out ``~/.pocketpaw/memory``: its
``sessions/`` holds one ``<safe key>.json`` per session (a list of messages) and
``_index.json`` (the list's metadata by safe key). Messages are written through
``FileMemoryStore.save`` and ``MemoryManager.add_to_session``, titles through
``update_session_title``, aliases through ``set_session_alias``, and a cleared session
through ``clear_session``: the files are exactly what PocketPaw writes. What PocketPaw
never writes itself (a file cut short by a crash, a file emptied or replaced by hand)
is made after, by the few lines marked "by hand".

Beside each store, ``<store>.pocketpaw.json`` records what PocketPaw's own code answers
for it: the list as its ``GET /api/v1/sessions`` handler returns it (order, titles,
counts) and each listed session's history as ``FileMemoryStore.get_session`` reads it.

Times are given to each message as naive datetimes, as PocketPaw's own default
(``datetime.now()``) makes them, and as PocketPaw reads them back (as UTC); one session
has aware UTC times, as a caller passing ``datetime.now(tz=UTC)`` makes them.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import shutil
import sys
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

# The stores' clock: every message time is an offset from here, so that the order of
# the list is chosen by this script, not by how fast it ran.
START = datetime(2026, 3, 2, 9, 0, 0)


def pocketpaw(name: str) -> Any:
    """A PocketPaw module (imported by name: the project's type checker never sees it)."""
    return importlib.import_module(f"pocketpaw.{name}")


class Writer:
    """One PocketPaw store, written through PocketPaw's own API."""

    def __init__(self, base: Path) -> None:
        memory = pocketpaw("memory")
        self.store = memory.FileMemoryStore(base)
        self.manager = memory.MemoryManager(store=self.store)
        self.base = base

    async def say(
        self,
        key: str,
        role: str | None,
        content: str,
        minutes: float,
        *,
        aware: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """One message of session ``key`` at START + ``minutes``."""
        protocol = pocketpaw("memory.protocol")
        when = START + timedelta(minutes=minutes)
        entry = protocol.MemoryEntry(
            id="",
            type=protocol.MemoryType.SESSION,
            content=content,
            role=role,
            session_key=key,
            created_at=when.replace(tzinfo=UTC) if aware else when,
            metadata=metadata or {},
        )
        await self.store.save(entry)

    async def rename(self, key: str, title: str) -> None:
        assert await self.store.update_session_title(key, title)

    def session_file(self, key: str) -> Path:
        path: Path = self.store._get_session_file(key)
        return path

    async def record(self) -> dict[str, Any]:
        """What PocketPaw answers for this store: its list and its histories."""
        manager_module = pocketpaw("memory.manager")
        manager_module._manager = self.manager
        sessions_api = pocketpaw("api.v1.sessions")
        listed = await sessions_api.list_sessions(limit=500)
        histories: dict[str, Any] = {}
        for item in listed["sessions"]:
            try:
                entries = await self.store.get_session(item["id"])
            except Exception as error:
                # PocketPaw's own reader fails on some odd files: that is recorded too.
                histories[item["id"]] = {"error": f"{type(error).__name__}: {error}"}
                continue
            histories[item["id"]] = [
                {
                    "id": e.id,
                    "role": e.role,
                    "content": e.content,
                    "timestamp": e.created_at.isoformat(),
                }
                for e in entries
            ]
        return {
            "generated_by": "tools/make_pocketpaw_fixtures.py",
            "pocketpaw_version": metadata.version("pocketpaw"),
            "list": listed,
            "histories": histories,
        }


def conversation(topic: str, turns: int) -> list[tuple[str, str]]:
    """``turns`` user/assistant exchanges about ``topic``."""
    said = []
    for turn in range(turns):
        said.append(("user", f"Question {turn + 1} about {topic}?"))
        said.append(("assistant", f"Answer {turn + 1} about {topic}."))
    return said


async def normal_store(base: Path) -> Writer:
    """Several channels, auto and user-set titles, a long session, keys of every shape."""
    w = Writer(base)
    # Telegram: a chat, then a fresh session of it as PocketPaw's /new makes it (an
    # alias from the chat's key to "<key>:<8 hex>"), renamed by the user.
    for n, (role, text) in enumerate(conversation("prime numbers in Python", 3)):
        await w.say("telegram:100200300", role, text, 10 + n)
    await w.store.set_session_alias("telegram:100200300", "telegram:100200300:1a2b3c4d")
    await w.say("telegram:100200300:1a2b3c4d", "user", "Plan a weekend in Lisbon", 60)
    await w.say("telegram:100200300:1a2b3c4d", "assistant", "Day one: Alfama.", 61)
    await w.rename("telegram:100200300:1a2b3c4d", "Trip to Lisbon")
    # Renamed, then written to again: the user's title stays.
    await w.say("telegram:100200300:1a2b3c4d", "user", "And day two?", 400)
    await w.say("telegram:100200300:1a2b3c4d", "assistant", "Sintra.", 401)
    # Discord: the long one, many messages over many hours.
    for n, (role, text) in enumerate(conversation("the release checklist", 120)):
        await w.say("discord:987654321012345678", role, text, 100 + n * 2)
    # Slack thread ids hold a '/' and a '.', which PocketPaw's file names replace.
    await w.say("slack:C01ABC/1705123456.789", "user", "Summarise the incident", 30)
    await w.say("slack:C01ABC/1705123456.789", "assistant", "Redis ran out of memory.", 31)
    # The web dashboard; its first message is the assistant's greeting, so the auto
    # title is the first *user* message.
    await w.say("websocket:3f9c2a1b7d4e", "assistant", "Hi! How can I help?", 20)
    await w.say("websocket:3f9c2a1b7d4e", "user", "What is a sorted set?", 21)
    await w.say("websocket:3f9c2a1b7d4e", "assistant", "A set ordered by score.", 22)
    # Keys with ':' and '@' inside the chat id, and a channel name holding '_'.
    await w.say("matrix:!abc:matrix.org", "user", "Bonjour, ça va ? 🙂", 40)
    await w.say("matrix:!abc:matrix.org", "assistant", "Très bien, merci !", 41)
    await w.say("teams:19:abc@thread.v2", "user", "Agenda for Monday", 50)
    await w.say("google_chat:spaces/abc123", "user", "Remind me to call Ana", 55)
    await w.say("google_chat:spaces/abc123", "assistant", "Done.", 56)
    # No user message: PocketPaw's auto title is "New Chat".
    await w.say("system:heartbeat", "system", "Daily check ran.", 70)
    await w.say("system:heartbeat", "assistant", "All channels healthy.", 71)
    # A first message longer than a title, over several lines: PocketPaw keeps its
    # first 80 characters, newlines and all.
    long_first = (
        "Please review this plan:\n  1. move the index to Redis\n  2. keep the JSON "
        "files as a backup for a month\n  3. delete them"
    )
    await w.say("cli:local", "user", long_first, 80)
    await w.say("cli:local", "assistant", "Looks sound.", 81)
    # A user title beyond ASCII, set before any later message.
    await w.say("whatsapp:+1234567890", "user", "Recette de crêpes", 90)
    await w.say("whatsapp:+1234567890", "assistant", "Farine, œufs, lait.", 91)
    await w.rename("whatsapp:+1234567890", "Crêpes 🥞")
    # A key without a channel prefix (PocketPaw's channel: "unknown").
    await w.say("legacy-notes", "user", "Old notes from before channels", 5)
    # Aware UTC times, and a tool message.
    await w.say("a2a:agent-7", "user", "Fetch the weather", 300, aware=True)
    await w.say("a2a:agent-7", "tool", '{"temp": 21}', 300.5, aware=True)
    await w.say("a2a:agent-7", "assistant", "It is 21 degrees.", 301, aware=True)
    # Message metadata as channels leave it.
    await w.say(
        "telegram:555",
        "user",
        "Ping",
        95,
        metadata={"sender_id": "555", "message_id": 42},
    )
    return w


async def odd_store(base: Path) -> Writer:
    """One of each odd input an import meets, around two sound sessions."""
    w = Writer(base)
    await w.say("telegram:1", "user", "A sound session", 10)
    await w.say("telegram:1", "assistant", "Indeed.", 11)
    # A message whose role PocketPaw never set (it reads it back as "user").
    await w.say("telegram:8", None, "Written without a role", 12)
    await w.say("telegram:8", "assistant", "Noted.", 13)
    # Corrupt: a write cut short, as a crash or a full disk leaves it (by hand).
    await w.say("telegram:2", "user", "This file will be cut short", 20)
    await w.say("telegram:2", "assistant", "So it will not parse.", 21)
    path = w.session_file("telegram:2")
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: len(text) // 2], encoding="utf-8")
    # A session file missing from the index: the index entry removed, as a crash between
    # PocketPaw's two writes (file, then index) leaves it.
    await w.say("discord:3", "user", "Not in the index", 30)
    index = w.store._load_session_index()
    del index["discord_3"]
    w.store._save_session_index(index)
    # An index entry without a file: PocketPaw's clear_session removes the file only.
    await w.say("slack:4", "user", "Cleared later", 40)
    await w.store.clear_session("slack:4")
    # An unknown role, which PocketPaw stores as given.
    await w.say("telegram:5", "user", "Before the odd one", 50)
    await w.say("telegram:5", "developer", "Odd role", 51)
    await w.say("telegram:5", "assistant", "After the odd one", 52)
    # An empty session: its messages removed by hand, its index entry left.
    await w.say("websocket:6", "user", "Soon gone", 60)
    w.session_file("websocket:6").write_text("[]", encoding="utf-8")
    # A file that is JSON but not a list of messages (by hand).
    await w.say("cli:7", "user", "Soon replaced", 70)
    w.session_file("cli:7").write_text('{"messages": []}', encoding="utf-8")
    return w


async def make_stores(target: Path) -> dict[str, dict[str, Any]]:
    """Each store written under ``target``, with what PocketPaw answers for it."""
    records = {}
    for name, make in (("normal", normal_store), ("odd", odd_store)):
        writer = await make(target / name)
        records[name] = await writer.record()
    return records


def main(target: Path) -> None:
    for name in ("normal", "odd"):
        if (target / name).exists():
            shutil.rmtree(target / name)
    for name, record in asyncio.run(make_stores(target)).items():
        text = json.dumps(record, indent=1, ensure_ascii=False) + "\n"
        (target / f"{name}.pocketpaw.json").write_text(text, encoding="utf-8")
        print(f"wrote {target / name} and {name}.pocketpaw.json")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data/pocketpaw"))
