"""Telegram Bot API updates (https://core.telegram.org/bots/api#update).

Session keys: a private chat or a group is ``{chat_id}``; a forum topic of a
supergroup is ``{chat_id}:topic:{message_thread_id}``. The message id for
idempotency is ``tg-{chat_id}-{message_id}``; an edit is a message of its own,
``tg-{chat_id}-{message_id}-edit-{edit_date}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import Adapted, Mirrored, Skipped

CHANNEL = "telegram"
MESSAGE_FIELDS = ("message", "edited_message", "channel_post", "edited_channel_post")


def session_key(message: Mapping[str, Any]) -> str:
    chat_id = message["chat"]["id"]
    thread = message.get("message_thread_id")
    if message.get("is_topic_message") and thread is not None:
        return f"{chat_id}:topic:{thread}"
    return str(chat_id)


def adapt_update(update: Mapping[str, Any] | Any) -> Adapted:
    """A Telegram update (its JSON, or an aiogram/python-telegram-bot object)."""
    if not isinstance(update, Mapping):
        update = _as_dict(update)
    kind = next((name for name in MESSAGE_FIELDS if update.get(name)), None)
    if kind is None:
        other = next((k for k in update if k != "update_id"), "nothing")
        return Skipped(f"update {update.get('update_id')} holds {other}, not a message")
    return adapt_message(update[kind], edited=kind.startswith("edited_"))


def adapt_message(message: Mapping[str, Any], *, edited: bool = False) -> Adapted:
    text = message.get("text") or message.get("caption")
    if not text:
        return Skipped(f"message {message.get('message_id')} has no text or caption")
    chat = message["chat"]
    sender = message.get("from") or {}
    message_id = f"tg-{chat['id']}-{message['message_id']}"
    timestamp = message.get("date")
    if edited:
        timestamp = message.get("edit_date") or timestamp
        message_id += f"-edit-{timestamp}"
    metadata: dict[str, Any] = {"chat_type": chat.get("type")}
    if sender.get("id") is not None:
        metadata["from_id"] = sender["id"]
    if sender.get("username"):
        metadata["username"] = sender["username"]
    if edited:
        metadata["edited"] = True
    return Mirrored(
        session_id=session_key(message),
        channel=CHANNEL,
        role="assistant" if sender.get("is_bot") else "user",
        content=text,
        message_id=message_id,
        timestamp=timestamp if timestamp is not None else 0,
        metadata=metadata,
    )


def _as_dict(value: Any) -> Mapping[str, Any]:
    """aiogram objects are pydantic models; python-telegram-bot's have to_dict()."""
    if hasattr(value, "model_dump"):
        dumped: Mapping[str, Any] = value.model_dump(mode="json", by_alias=True, exclude_none=True)
        return dumped
    if hasattr(value, "to_dict"):
        converted: Mapping[str, Any] = value.to_dict()
        return converted
    raise TypeError(f"not a Telegram update: {type(value).__name__}")
