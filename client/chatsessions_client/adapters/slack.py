"""Slack Events API ``message`` events (https://api.slack.com/events/message).

Session key: ``{channel}:{thread_ts}``, a thread being one conversation; a
message outside any thread starts one keyed by its own ``ts``. Message ids are
``sl-{channel}-{ts}``; an edit (subtype ``message_changed``) is
``sl-{channel}-{ts}-edit-{event ts}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import Adapted, Mirrored, Skipped

CHANNEL = "slack"
MIRRORED_SUBTYPES = {None, "bot_message", "thread_broadcast", "file_share", "message_changed"}


def adapt_event(event: Mapping[str, Any]) -> Adapted:
    """The ``event`` of an event_callback envelope (the envelope itself is accepted too)."""
    if event.get("type") == "event_callback":
        event = event["event"]
    if event.get("type") != "message":
        return Skipped(f"event type {event.get('type')!r} is not a message")
    subtype = event.get("subtype")
    if subtype not in MIRRORED_SUBTYPES:
        return Skipped(f"message subtype {subtype!r} carries no conversation text")
    edited = subtype == "message_changed"
    message = event["message"] if edited else event
    text = message.get("text")
    if not text:
        return Skipped(f"message {message.get('ts')} has no text")
    channel = event["channel"]
    thread = message.get("thread_ts") or message["ts"]
    message_id = f"sl-{channel}-{message['ts']}"
    if edited:
        message_id += f"-edit-{event['ts']}"
    is_bot = bool(message.get("bot_id")) or subtype == "bot_message"
    metadata: dict[str, Any] = {"user": message.get("user") or message.get("bot_id")}
    if event.get("team") or message.get("team"):
        metadata["team"] = event.get("team") or message.get("team")
    if edited:
        metadata["edited"] = True
    return Mirrored(
        session_id=f"{channel}:{thread}",
        channel=CHANNEL,
        role="assistant" if is_bot else "user",
        content=text,
        message_id=message_id,
        timestamp=float(event["ts"] if edited else message["ts"]),
        metadata={k: v for k, v in metadata.items() if v is not None},
    )
