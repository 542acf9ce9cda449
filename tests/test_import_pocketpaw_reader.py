"""The PocketPaw reader on stores written by PocketPaw 0.4.18's own code
(tests/data/pocketpaw, made by tools/make_pocketpaw_fixtures.py), compared with what
PocketPaw's own code answers for them (the ``<store>.pocketpaw.json`` beside each)."""

from __future__ import annotations

import json
import math
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from service.importers import SessionRecord
from service.importers.pocketpaw import (
    NotAPocketPawStore,
    PocketPawStore,
    channel_of_file_name,
    message_id,
)

DATA = Path(__file__).parent / "data" / "pocketpaw"


def pocketpaw_answers(store: str) -> dict[str, Any]:
    answers: dict[str, Any] = json.loads((DATA / f"{store}.pocketpaw.json").read_text())
    return answers


def ms(text: str) -> int:
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def read(path: Path) -> tuple[list[SessionRecord], list[str]]:
    store = PocketPawStore(path)
    sessions = list(store.sessions())
    return sessions, store.problems


@pytest.fixture
def normal_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(DATA / "normal", tmp_path / "normal"))


def test_normal_store_reads_as_pocketpaw_lists_it() -> None:
    answers = pocketpaw_answers("normal")
    listed = answers["list"]["sessions"]
    sessions, problems = read(DATA / "normal")
    assert problems == []
    assert [s.id for s in sessions] == [item["id"] for item in listed]
    assert len(sessions) == answers["list"]["total"] == 14
    for session, item in zip(sessions, listed, strict=True):
        assert session.channel == item["channel"]
        # chatsessions titles are single-spaced; PocketPaw keeps a first message's newlines.
        assert session.title == " ".join(item["title"].split())
        assert session.title_source == ("user" if "user_title" in item else "auto")
        assert session.created_at_ms == ms(item["created"])
        assert session.updated_at_ms == ms(item["last_activity"])
        history = answers["histories"][item["id"]]
        assert len(session.messages) == item["message_count"] == len(history)
        assert [(m.role, m.content, m.timestamp_ms) for m in session.messages] == [
            (h["role"] or "user", h["content"], ms(h["timestamp"])) for h in history
        ]


def test_normal_store_details() -> None:
    sessions = {s.id: s for s in read(DATA / "normal")[0]}
    # Renamed by the user, then written to: the user's title with its source.
    assert sessions["telegram_100200300_1a2b3c4d"].title == "Trip to Lisbon"
    assert sessions["telegram_100200300_1a2b3c4d"].title_source == "user"
    assert sessions["whatsapp_+1234567890"].title == "Crêpes 🥞"
    assert sessions["whatsapp_+1234567890"].title_source == "user"
    # PocketPaw's auto titles: the first user message, cut at 80 characters.
    assert sessions["websocket_3f9c2a1b7d4e"].title == "What is a sorted set?"
    assert sessions["websocket_3f9c2a1b7d4e"].messages[0].role == "assistant"
    assert sessions["cli_local"].title == (
        "Please review this plan: 1. move the index to Redis 2. keep the JSON files a"
    )
    assert sessions["system_heartbeat"].title == "New Chat"
    # The channel comes from the key's prefix, as PocketPaw's index keeps it.
    assert sessions["google_chat_spaces_abc123"].channel == "google_chat"
    assert sessions["legacy-notes"].channel == "unknown"
    assert sessions["slack_C01ABC_1705123456.789"].channel == "slack"
    # Naive times are UTC, as PocketPaw reads them; aware ones keep their offset.
    assert sessions["telegram_100200300"].created_at_ms == 1772442600000  # 09:10:00Z
    tool = sessions["a2a_agent-7"].messages[1]
    assert (tool.role, tool.timestamp_ms) == ("tool", 1772460030000)  # 14:00:30+00:00
    assert sessions["telegram_555"].messages[0].metadata == {
        "sender_id": "555",
        "message_id": 42,
    }
    assert sessions["telegram_100200300"].messages[0].metadata is None
    long = sessions["discord_987654321012345678"]
    assert len(long.messages) == 240
    assert long.messages[-1].content == "Answer 120 about the release checklist."


def test_message_ids_are_derived_from_the_source() -> None:
    first = read(DATA / "normal")[0]
    again = read(DATA / "normal")[0]
    ids = [m.id for s in first for m in s.messages]
    assert ids == [m.id for s in again for m in s.messages]
    assert len(set(ids)) == len(ids) == 271
    assert all(re.fullmatch(r"pp-[0-9a-f]{32}", i) for i in ids)
    # The same text at another position, or in another session, is another message.
    assert message_id("a", 0, "hi") != message_id("a", 1, "hi")
    assert message_id("a", 0, "hi") != message_id("b", 0, "hi")
    assert message_id("a", 0, "hi") != message_id("a", 0, "hi!")


def test_messages_pocketpaw_appends_later_get_new_ids_and_old_ones_keep_theirs(
    normal_copy: Path,
) -> None:
    before = {s.id: s for s in read(normal_copy)[0]}
    path = normal_copy / "sessions" / "telegram_555.json"
    stored = json.loads(path.read_text())
    stored.append(
        {
            "id": "x",
            "role": "assistant",
            "content": "Pong",
            "timestamp": "2026-03-02T11:00:00",
            "metadata": {},
        }
    )
    path.write_text(json.dumps(stored, indent=2))
    after = {s.id: s for s in read(normal_copy)[0]}
    old, new = before["telegram_555"].messages, after["telegram_555"].messages
    assert [m.id for m in new[: len(old)]] == [m.id for m in old]
    assert len(new) == len(old) + 1 and new[-1].id not in {m.id for m in old}
    # Later than the index's last_activity: updated_at follows the latest message.
    assert after["telegram_555"].updated_at_ms == ms("2026-03-02T11:00:00")


def test_odd_store_skips_each_odd_input_with_one_line() -> None:
    answers = pocketpaw_answers("odd")
    sessions, problems = read(DATA / "odd")
    expected = {
        "sessions/telegram_2.json": "not valid JSON",
        "sessions/discord_3.json": "not in _index.json",
        "sessions/slack_4.json": "the file does not exist",
        "sessions/telegram_5.json": "message 2 has the role 'developer'",
        "sessions/websocket_6.json": "no messages",
        "sessions/cli_7.json": "not a list of messages",
    }
    assert len(problems) == len(expected)
    for source, text in expected.items():
        (line,) = [p for p in problems if p.startswith(source + ":")]
        assert text in line, line
        assert "skipped" in line
    # What is left: PocketPaw's list, without the sessions skipped, in its order.
    skipped = {"telegram_2", "slack_4", "websocket_6", "cli_7"}
    listed = [item["id"] for item in answers["list"]["sessions"]]
    assert "discord_3" not in listed
    assert [s.id for s in sessions] == [i for i in listed if i not in skipped]
    by_id = {s.id: s for s in sessions}
    # The unknown role's message alone is skipped.
    assert [m.content for m in by_id["telegram_5"].messages] == [
        "Before the odd one",
        "After the odd one",
    ]
    # A message PocketPaw stored without a role is the user's, as PocketPaw reads it.
    assert [m.role for m in by_id["telegram_8"].messages] == ["user", "assistant"]
    assert answers["histories"]["telegram_8"][0]["role"] is None
    assert by_id["telegram_8"].title == "New Chat"


def test_without_an_index_sessions_are_read_from_their_files(normal_copy: Path) -> None:
    (normal_copy / "sessions" / "_index.json").unlink()
    sessions, problems = read(normal_copy)
    assert problems == ["sessions/_index.json: missing; sessions are read from their files"]
    by_id = {s.id: s for s in sessions}
    assert len(by_id) == 14
    assert by_id["google_chat_spaces_abc123"].channel == "google_chat"
    assert by_id["matrix_!abc_matrix.org"].channel == "matrix"
    assert by_id["legacy-notes"].channel == "unknown"
    # Auto titles as PocketPaw derives them; a user's title lived only in the index.
    assert by_id["telegram_100200300_1a2b3c4d"].title == "Plan a weekend in Lisbon"
    assert by_id["telegram_100200300_1a2b3c4d"].title_source == "auto"
    assert by_id["system_heartbeat"].title == "New Chat"
    assert by_id["telegram_100200300"].created_at_ms == ms("2026-03-02T09:10:00")


def test_a_corrupt_index_is_one_line(normal_copy: Path) -> None:
    (normal_copy / "sessions" / "_index.json").write_text('{"telegram_555": ')
    sessions, problems = read(normal_copy)
    assert len(problems) == 1 and problems[0].startswith("sessions/_index.json: unreadable")
    assert len(sessions) == 14


def test_files_that_are_not_sessions_are_left_alone(normal_copy: Path) -> None:
    folder = normal_copy / "sessions"
    (folder / "telegram_555_compaction.json").write_text('{"watermark": 1, "summary": "s"}')
    (folder / "telegram_555.tmp").write_text("[")
    (folder / "_other.json").write_text("{}")
    sessions, problems = read(normal_copy)
    assert problems == [] and len(sessions) == 14


def test_the_sessions_folder_itself_is_a_store_too() -> None:
    assert [s.id for s in read(DATA / "normal" / "sessions")[0]] == [
        s.id for s in read(DATA / "normal")[0]
    ]
    odd = PocketPawStore(DATA / "odd" / "sessions")
    list(odd.sessions())
    assert any(p.startswith("telegram_2.json: not valid JSON") for p in odd.problems)


def test_a_folder_without_sessions_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NotAPocketPawStore, match="not a PocketPaw memory store"):
        PocketPawStore(tmp_path)


def test_what_chatsessions_cannot_store_is_skipped_or_changed_with_a_line(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "sessions"
    folder.mkdir()
    messages = [
        # Python's json writes a lone surrogate escaped and NaN bare; orjson refuses both.
        {"id": "1", "role": "user", "content": "bad \ud800", "timestamp": "2026-01-01T00:00:00"},
        {"id": "2", "role": "user", "content": "no time", "timestamp": "yesterday"},
        {"id": "3", "role": "user", "content": 42, "timestamp": "2026-01-01T00:00:01"},
        "not a message",
        {
            "id": "5",
            "role": "assistant",
            "content": "kept",
            "timestamp": "2026-01-01T00:00:02",
            "metadata": {"score": float("nan")},
        },
    ]
    (folder / "web_1.json").write_text(json.dumps(messages))
    (folder / "search.json").write_text(json.dumps(messages[4:]))
    index = {
        "web_1": {"title": "x " * 150, "user_title": "x " * 150, "channel": "my channel"},
        "search": {"title": "t", "channel": "web"},
    }
    (folder / "_index.json").write_text(json.dumps(index))
    sessions, problems = read(tmp_path)
    (session,) = sessions
    assert [m.content for m in session.messages] == ["kept"]
    metadata = session.messages[0].metadata
    assert metadata is not None and math.isnan(metadata["score"])
    assert session.channel == "unknown"
    assert session.title == ("x " * 100).strip() and session.title_source == "user"
    assert problems == [
        "sessions/web_1.json: message 1 has no text content; message skipped",
        "sessions/web_1.json: message 2 has no readable timestamp; message skipped",
        "sessions/web_1.json: message 3 has no text content; message skipped",
        "sessions/web_1.json: message 4 is not an object; message skipped",
        "sessions/web_1.json: title is over 200 characters; cut",
        "sessions/web_1.json: channel 'my channel' is not a channel name chatsessions "
        "takes; imported as 'unknown'",
        "sessions/search.json: 'search' names a route, not a session; skipped",
    ]


def test_channel_of_a_file_name() -> None:
    assert channel_of_file_name("google_chat_spaces_abc") == "google_chat"
    assert channel_of_file_name("telegram_1_2") == "telegram"
    assert channel_of_file_name("mybot_42") == "mybot"
    assert channel_of_file_name("notes") == "unknown"
