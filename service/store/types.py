"""What the store answers: sessions, messages, pages, results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from ..models import format_time

RedisClient = Redis | RedisCluster


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    title: str
    title_source: str
    channel: str
    created_at: str
    updated_at: str
    message_count: int
    active: bool
    metadata: dict[str, Any] | None
    pinned: bool = False
    archived: bool = False
    tags: tuple[str, ...] = ()
    user: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """As the API answers a session: the list item's members in the item's order,
        then its title's source and metadata."""
        answer: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "message_count": self.message_count,
            "channel": self.channel,
            "pinned": self.pinned,
            "archived": self.archived,
            "tags": list(self.tags),
        }
        if self.user is not None:
            answer["user"] = self.user
        answer["active"] = self.active
        answer["title_source"] = self.title_source
        answer["metadata"] = self.metadata if self.metadata is not None else {}
        return answer


# Not frozen: a frozen dataclass sets each field through object.__setattr__, and a batch
# makes two of these per message (the same holds for MessageIn and BatchOutcome).
@dataclass(slots=True)
class Message:
    id: str
    role: str
    content: str
    timestamp: str
    metadata: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "role": self.role,
            "content": self.content,
            "timestamp": self.timestamp,
            "metadata": self.metadata,
        }


@dataclass(slots=True)
class SessionPage:
    total: int
    # The page's items, already JSON, comma-separated, without the brackets.
    items_json: bytes
    next_cursor: str | None
    # The namespace's version when the page was read (SessionStore.version).
    version: str = ""
    # False when total is an upper bound (several filters: SessionStore._scan_page).
    exact: bool = True
    _json: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def json(self) -> bytes:
        """The page as the list answers it, built once: list requests that shared a read
        (see :mod:`service.coalesce`) share the page, and each would copy it again."""
        if self._json is None:
            self._json = b"".join(
                [
                    b'{"sessions":[',
                    self.items_json,
                    b'],"total":',
                    str(self.total).encode(),
                    b"" if self.exact else b',"total_exact":false',
                    b',"next_cursor":',
                    orjson.dumps(self.next_cursor),
                    b"}",
                ]
            )
        return self._json


class ListFilter(NamedTuple):
    """The list's filters of SPEC §7 beyond channel and active: ``archived`` False (the
    default), True, or None for either; ``pinned`` True, False or None for either; a
    ``tag`` and a ``user``; a ``reader``, whose unread counts the items gain, and
    ``unread`` to keep only sessions with messages that reader has not read."""

    archived: bool | None = False
    pinned: bool | None = None
    tag: str | None = None
    user: str | None = None
    reader: str | None = None
    unread: bool = False

    def positive(self, channel: str | None) -> list[tuple[str, str]]:
        """The filters that each name one sorted set: (kind, value)."""
        named = [("channel", channel), ("tag", self.tag), ("user", self.user)]
        found = [(kind, value) for kind, value in named if value is not None]
        if self.pinned:
            found.append(("pinned", ""))
        return found

    def scans(self, channel: str | None) -> bool:
        """Whether no one sorted set holds the page, so that it is found by a bounded
        walk (SessionStore._scan_page) rather than read by rank."""
        return (
            self.archived is None
            or len(self.positive(channel)) > 1
            or self.pinned is False
            or self.unread
        )


NO_FILTER = ListFilter()


class PageQuery(NamedTuple):
    """What a list page asks for, but the time: equal queries can share a read."""

    namespace: str
    limit: int
    offset: int | None
    cursor: str | None
    channel: str | None
    active: bool | None
    filters: ListFilter = NO_FILTER


@dataclass(frozen=True, slots=True)
class SearchHit:
    session: Session
    # The matching message, or None when only the title matched.
    message: Message | None


@dataclass(frozen=True, slots=True)
class SearchPage:
    hits: list[SearchHit]
    # None when every session was looked at; else where the same search goes on.
    next_cursor: str | None


@dataclass(slots=True)
class BatchOutcome:
    """One stored (or recognised) item of a batch: less than a full IngestResult."""

    created: bool
    message: Message
    message_count: int


@dataclass(frozen=True, slots=True)
class MessagePage:
    messages: list[Message]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class RestoreOutcome:
    """What restoring one session did: whether it created the session, how many of the
    given messages it appended and how many the session held already."""

    created: bool
    stored: int
    seen: int


@dataclass(frozen=True, slots=True)
class SessionChange:
    """What a PATCH sets; None leaves a field as it is. Empty metadata takes it away."""

    title: str | None = None
    pinned: bool | None = None
    archived: bool | None = None
    tags: tuple[str, ...] | None = None
    metadata: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class BulkOutcome:
    """What a bulk action found: sessions that exist, those it changed (or would, in a
    dry run), and the ids of those that do not exist."""

    matched: int
    changed: int
    missing: list[str]


@dataclass(frozen=True, slots=True)
class Activity:
    """Sessions per hour by the hour of their latest activity, per channel: ``hours``
    are the hours' starts (epoch ms), oldest first."""

    hours: list[int]
    channels: dict[str, list[int]]


class ChannelCounts(NamedTuple):
    total: int
    active: int
    # Sessions with messages the reader asked about has not read; -1 without a reader.
    unread: int


@dataclass(frozen=True, slots=True)
class Counts:
    """Counts of the sessions not archived (``archived`` counts the others)."""

    total: int
    active: int
    archived: int
    pinned: int
    channels: dict[str, ChannelCounts]
    tags: dict[str, int]
    activity: Activity | None
    # Whether unread counts were asked for (for a reader).
    reader: bool = False

    def as_dict(self) -> dict[str, Any]:
        channels: dict[str, Any] = {}
        for name, counts in sorted(self.channels.items()):
            channels[name] = {"total": counts.total, "active": counts.active}
            if self.reader:
                channels[name]["unread"] = counts.unread
        answer: dict[str, Any] = {
            "total": self.total,
            "active": self.active,
            "archived": self.archived,
            "pinned": self.pinned,
            "channels": channels,
            "tags": dict(sorted(self.tags.items())),
        }
        if self.reader:
            answer["unread"] = sum(c.unread for c in self.channels.values())
        if self.activity is not None:
            answer["activity"] = {
                "hours": [format_time(start) for start in self.activity.hours],
                "channels": dict(sorted(self.activity.channels.items())),
            }
        return answer
