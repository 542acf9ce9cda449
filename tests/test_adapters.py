"""Platform payloads through the adapters and the client into a live service on real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from aiogram.types import Update
from aiohttp.test_utils import TestServer

from chatsessions_client import ChatSessionsClient, Mirrored, Skipped
from chatsessions_client.adapters import discord as discord_adapter
from chatsessions_client.adapters import slack as slack_adapter
from chatsessions_client.adapters import telegram as telegram_adapter
from service.app import create_app
from service.settings import Settings

from conftest import Tokens
from redis_process import RedisProcess

pytestmark = pytest.mark.real

USER = {"id": 42, "is_bot": False, "first_name": "Ana", "username": "ana"}
BOT = {"id": 7, "is_bot": True, "first_name": "Helper", "username": "helper_bot"}


def tg_message(
    message_id: int, chat: dict[str, Any], sender: dict[str, Any] | None, date: int, **extra: Any
) -> dict[str, Any]:
    message = {"message_id": message_id, "chat": chat, "date": date, **extra}
    if sender is not None:
        message["from"] = sender
    return message


PRIVATE = {"id": 42, "type": "private", "first_name": "Ana"}
GROUP = {"id": -1001234567890, "type": "supergroup", "title": "Python fans", "is_forum": True}


@pytest.fixture
async def live(
    redis_server: RedisProcess, settings: Settings, tokens: Tokens
) -> AsyncIterator[ChatSessionsClient]:
    from redis.asyncio import Redis

    flush = Redis.from_url(redis_server.url)
    await flush.flushall()
    await flush.aclose()
    app = create_app(replace(settings, redis_url=redis_server.url))
    server = TestServer(app)
    await server.start_server()
    async with ChatSessionsClient(str(server.make_url("")), tokens["admin"]) as client:
        yield client
    await server.close()


async def test_telegram_updates_parsed_by_aiogram(live: ChatSessionsClient) -> None:
    updates: list[dict[str, Any]] = [
        {
            "update_id": 1,
            "message": tg_message(10, PRIVATE, USER, 1705314600, text="Python prime numbers?"),
        },
        {"update_id": 2, "message": tg_message(11, PRIVATE, BOT, 1705314610, text="2, 3, 5, 7…")},
        {
            "update_id": 3,
            "message": tg_message(
                500,
                GROUP,
                USER,
                1705315000,
                text="Topic question",
                message_thread_id=77,
                is_topic_message=True,
            ),
        },
        {
            "update_id": 4,
            "message": tg_message(
                501,
                GROUP,
                USER,
                1705315100,
                caption="A photo caption",
                message_thread_id=77,
                is_topic_message=True,
                photo=[{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}],
            ),
        },
        {
            "update_id": 5,
            "edited_message": tg_message(
                10,
                PRIVATE,
                USER,
                1705314600,
                text="Python prime numbers, please?",
                edit_date=1705316000,
            ),
        },
        {
            "update_id": 6,
            "channel_post": tg_message(
                900,
                {"id": -100555, "type": "channel", "title": "News"},
                None,
                1705300000,
                text="Channel news",
            ),
        },
        {
            "update_id": 7,
            "message": tg_message(
                12,
                PRIVATE,
                USER,
                1705314620,
                sticker={
                    "file_id": "s",
                    "file_unique_id": "s",
                    "type": "regular",
                    "width": 1,
                    "height": 1,
                    "is_animated": False,
                    "is_video": False,
                },
            ),
        },
        {"update_id": 8, "callback_query": {"id": "q", "from": USER, "chat_instance": "c"}},
    ]
    outcomes = []
    for raw in updates:
        update = Update.model_validate(raw)
        adapted = telegram_adapter.adapt_update(update)
        outcomes.append(adapted)
        if isinstance(adapted, Mirrored):
            await live.mirror(adapted)
    skipped = [o.reason for o in outcomes if isinstance(o, Skipped)]
    assert len(skipped) == 2
    assert "no text or caption" in skipped[0] and "callback_query" in skipped[1]
    # Delivered twice (a webhook retry): the same ids, nothing doubles.
    for raw in updates[:2]:
        adapted = telegram_adapter.adapt_update(raw)
        assert isinstance(adapted, Mirrored)
        assert (await live.mirror(adapted))["created"] is False
    page = await live.page(channel="telegram")
    listed = {s["id"]: s for s in page["sessions"]}
    assert [s["id"] for s in page["sessions"]] == ["42", "-1001234567890:topic:77", "-100555"]
    assert listed["42"]["message_count"] == 3
    assert listed["42"]["title"] == "Python prime numbers?"
    assert listed["42"]["updated_at"] == "2024-01-15T10:53:20Z"  # the edit is the latest
    assert listed["-1001234567890:topic:77"]["message_count"] == 2
    history = await live.history("42")
    assert [m["role"] for m in history["messages"]] == ["user", "assistant", "user"]
    assert history["messages"][2]["metadata"]["edited"] is True


async def test_discord_messages_guild_and_dm(live: ChatSessionsClient) -> None:
    payloads = [
        (
            {
                "id": "1101",
                "channel_id": "555",
                "guild_id": "9",
                "author": {"id": "42", "username": "ana"},
                "content": "Guild question",
                "timestamp": "2024-01-15T10:00:00.000000+00:00",
            },
            None,
        ),
        (
            {
                "id": "1102",
                "channel_id": "555",
                "guild_id": "9",
                "author": {"id": "7", "username": "helper", "bot": True},
                "content": "Guild answer",
                "timestamp": "2024-01-15T10:00:05+00:00",
            },
            None,
        ),
        (
            {
                "id": "1201",
                "channel_id": "777",
                "author": {"id": "987654321", "username": "bo"},
                "content": "Private question",
                "timestamp": "2024-01-15T11:00:00+00:00",
            },
            None,
        ),
        (
            {
                "id": "1202",
                "channel_id": "777",
                "author": {"id": "7", "username": "helper", "bot": True},
                "content": "Private answer",
                "timestamp": "2024-01-15T11:00:03+00:00",
            },
            "987654321",
        ),
        (
            {
                "id": "1203",
                "channel_id": "777",
                "author": {"id": "987654321"},
                "content": "",
                "timestamp": "2024-01-15T11:00:09+00:00",
            },
            None,
        ),
    ]
    results = [discord_adapter.adapt_message(p, dm_peer_id=peer) for p, peer in payloads]
    assert isinstance(results[-1], Skipped)
    for adapted in results[:-1]:
        assert isinstance(adapted, Mirrored)
        await live.mirror(adapted)
    page = await live.page(channel="discord")
    assert [(s["id"], s["message_count"]) for s in page["sessions"]] == [
        ("dm:987654321", 2),
        ("555", 2),
    ]
    history = await live.history("dm:987654321")
    assert [m["role"] for m in history["messages"]] == ["user", "assistant"]


async def test_slack_threads(live: ChatSessionsClient) -> None:
    events: list[dict[str, Any]] = [
        {
            "type": "event_callback",
            "team_id": "T1",
            "event": {
                "type": "message",
                "channel": "C01ABC",
                "user": "U1",
                "text": "Deploy failed",
                "ts": "1705123456.789",
                "team": "T1",
            },
        },
        {
            "type": "message",
            "channel": "C01ABC",
            "bot_id": "B1",
            "text": "Looking into it",
            "ts": "1705123460.000100",
            "thread_ts": "1705123456.789",
        },
        {
            "type": "message",
            "channel": "C01ABC",
            "user": "U1",
            "text": "Thanks",
            "ts": "1705123470.000200",
            "thread_ts": "1705123456.789",
        },
        {
            "type": "message",
            "subtype": "channel_join",
            "channel": "C01ABC",
            "user": "U2",
            "text": "joined",
            "ts": "1705123480.1",
        },
        {"type": "reaction_added", "user": "U1", "reaction": "thumbsup"},
        {
            "type": "message",
            "subtype": "message_changed",
            "channel": "C01ABC",
            "ts": "1705123490.5",
            "message": {
                "type": "message",
                "user": "U1",
                "text": "Thanks a lot",
                "ts": "1705123470.000200",
                "thread_ts": "1705123456.789",
            },
        },
    ]
    outcomes = [slack_adapter.adapt_event(e) for e in events]
    assert [type(o).__name__ for o in outcomes] == [
        "Mirrored",
        "Mirrored",
        "Mirrored",
        "Skipped",
        "Skipped",
        "Mirrored",
    ]
    for adapted in outcomes:
        if isinstance(adapted, Mirrored):
            await live.mirror(adapted)
    session = await live.get_session("C01ABC:1705123456.789")
    assert (session["message_count"], session["title"], session["channel"]) == (
        4,
        "Deploy failed",
        "slack",
    )
    history = await live.history("C01ABC:1705123456.789")
    assert [m["content"] for m in history["messages"]] == [
        "Deploy failed",
        "Looking into it",
        "Thanks",
        "Thanks a lot",
    ]


def test_batch_items_have_the_api_shape() -> None:
    adapted = slack_adapter.adapt_event(
        {"type": "message", "channel": "C1", "user": "U", "text": "x", "ts": "1.5"}
    )
    assert isinstance(adapted, Mirrored)
    assert adapted.as_batch_item() == {
        "session_id": "C1:1.5",
        "channel": "slack",
        "role": "user",
        "content": "x",
        "id": "sl-C1-1.5",
        "timestamp": 1.5,
        "metadata": {"user": "U"},
    }
