"""The neutral records of an import: a session as chatsessions stores it, with every
time in epoch milliseconds and every value already checked against the service's
rules (ids, channel names, titles, roles), so that a writer needs no source's quirks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class MessageRecord:
    # Derived from the source deterministically: importing twice stores nothing twice.
    id: str
    role: str
    content: str
    timestamp_ms: int
    metadata: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id: str
    channel: str
    title: str
    # "user" for a title a person set (never replaced by an auto title), "auto" for one
    # from the first user message, "default" for none yet.
    title_source: str
    created_at_ms: int
    updated_at_ms: int
    messages: list[MessageRecord]
    metadata: dict[str, Any] | None = None
    pinned: bool = False
    archived: bool = False
    tags: tuple[str, ...] = ()
    user: str | None = None
