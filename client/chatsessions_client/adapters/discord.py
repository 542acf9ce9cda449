"""Discord messages (the gateway's MESSAGE_CREATE payload, or discord.py's Message).

Session keys: a guild channel (or thread) is its channel id; a direct message
is ``dm:{user_id}`` of the person the bot talks with. Message ids are
``dc-{message_id}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import Adapted, Mirrored, Skipped

CHANNEL = "discord"


def adapt_message(message: Mapping[str, Any], *, dm_peer_id: int | str | None = None) -> Adapted:
    """``dm_peer_id`` names the human in a DM when the bot itself is the author."""
    content = message.get("content")
    if not content:
        return Skipped(f"message {message.get('id')} has no text (embeds or attachments only)")
    author = message.get("author") or {}
    is_bot = bool(author.get("bot"))
    if message.get("guild_id"):
        session_id = str(message["channel_id"])
    else:
        peer = dm_peer_id if is_bot else author.get("id")
        if peer is None:
            return Skipped(f"direct message {message.get('id')} from the bot names no peer")
        session_id = f"dm:{peer}"
    metadata: dict[str, Any] = {"author_id": author.get("id"), "username": author.get("username")}
    if message.get("guild_id"):
        metadata["guild_id"] = message["guild_id"]
    return Mirrored(
        session_id=session_id,
        channel=CHANNEL,
        role="assistant" if is_bot else "user",
        content=content,
        message_id=f"dc-{message['id']}",
        timestamp=message.get("timestamp") or 0,
        metadata={k: v for k, v in metadata.items() if v is not None},
    )


def adapt_discord_py(message: Any) -> Adapted:
    """A discord.py ``Message`` as received in ``on_message``."""
    guild = getattr(message, "guild", None)
    channel = message.channel
    payload = {
        "id": message.id,
        "channel_id": channel.id,
        "guild_id": guild.id if guild is not None else None,
        "author": {
            "id": message.author.id,
            "username": message.author.name,
            "bot": message.author.bot,
        },
        "content": message.content,
        "timestamp": message.created_at.isoformat(),
    }
    recipient = getattr(channel, "recipient", None)
    return adapt_message(payload, dm_peer_id=recipient.id if recipient is not None else None)
