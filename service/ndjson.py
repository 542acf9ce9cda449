"""chatsessions NDJSON, version 1: a namespace as JSON lines, written and read.

The format (docs/operations.md, "Export", says the same for operators):

- UTF-8, one JSON object per line, each line ended by ``\\n``.
- Line 1, the header::

      {"format": "chatsessions-ndjson", "version": 1, "namespace": "default",
       "exported_at": "2026-03-02T10:00:00.123Z", "updated_since": null}

  ``updated_since`` is the bound the export was asked for, or null for all sessions.
- Then one line per session, most recently active first::

      {"id": "…", "title": "…", "created_at": "…", "updated_at": "…",
       "channel": "web", "pinned": false, "archived": false, "tags": [],
       "title_source": "auto", "metadata": {},
       "messages": [{"id": "…", "role": "user", "content": "…",
                     "timestamp": "…", "metadata": {}}, …],
       "message_count": 2}

  The session's fields are those of the API's session object but the derived
  ``active`` (and ``message_count``, which closes the line: it counts the messages on
  the line, so that a session is streamed without being held whole). Messages are in
  arrival order. Times are RFC 3339 in UTC to the millisecond, as the API writes them.
- Readers take fields they do not know without complaint (version 1 may gain
  optional fields, such as those of SPEC §7), and refuse a version they do not know.

Writing goes through the store's public API in bounded steps: a page of at most
``LIST_PAGE`` sessions by cursor, then each session and its messages a page of at most
``MESSAGE_PAGE`` (and the store's byte bound) at a time. Nothing holds more than one
list page of ids and one page of messages, whatever the namespace's size.

The list pages by cursor, most recent first, so an export with ``updated_since``
stops at the first older session. A session written while the export runs moves to
the top of the list: if the export had not reached it yet, it is not in this export
(the next one, with ``updated_since`` at this one's ``exported_at``, has it); a
session deleted once listed is left out, or ends with the messages read before.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from .importers.records import MessageRecord, SessionRecord
from .models import (
    MAX_TIME_MS,
    MIN_TIME_MS,
    ROLES,
    InvalidInput,
    check_channel,
    check_flag,
    check_session_id,
    check_tags,
    check_title,
    check_user,
    format_time,
    parse_time,
)
from .store import ListFilter, SessionNotFound, SessionStore

# An export holds every session, archived or not.
EVERY = ListFilter(archived=None)

FORMAT = "chatsessions-ndjson"
VERSION = 1
CONTENT_TYPE = "application/x-ndjson"
LIST_PAGE = 500
MESSAGE_PAGE = 500
# The store's title sources: none set yet ("New session"), the first user message's, a
# person's.
TITLE_SOURCES = ("default", "auto", "user")
# Session fields the API answers that an export leaves out: derived, not stored.
DERIVED_FIELDS = ("active", "message_count")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_EPOCH_SECONDS = re.compile(r"[0-9]+(\.[0-9]+)?")


class NdjsonError(ValueError):
    """A line that is not what the format says, with its number (from 1)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


# --- times --------------------------------------------------------------------------------


def parse_since(text: str, field: str = "updated_since") -> int:
    """Epoch ms of an ``updated_since`` bound as a person gives it: an RFC 3339 time
    (a time without a zone is UTC) or epoch seconds; :class:`InvalidInput` otherwise."""
    text = text.strip()
    if _EPOCH_SECONDS.fullmatch(text):
        return parse_time(float(text), field)
    return parse_time(text, field)


def time_of(value: Any) -> int:
    """Epoch ms of an RFC 3339 time with its zone, as an export writes them."""
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 time string")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an RFC 3339 time") from None
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    ms = (parsed - _EPOCH) // _MILLISECOND
    if not MIN_TIME_MS <= ms <= MAX_TIME_MS:
        raise ValueError(f"{value!r} is outside 1970-9999")
    return ms


# --- writing ------------------------------------------------------------------------------


def header_line(namespace: str, exported_at_ms: int, updated_since_ms: int | None) -> bytes:
    return (
        orjson.dumps(
            {
                "format": FORMAT,
                "version": VERSION,
                "namespace": namespace,
                "exported_at": format_time(exported_at_ms),
                "updated_since": None
                if updated_since_ms is None
                else format_time(updated_since_ms),
            }
        )
        + b"\n"
    )


class NamespaceExport:
    """One namespace's export as chunks of NDJSON, counting what it wrote.

    ``total`` is the namespace's session count when the export began (known once the
    first chunk is out): with ``updated_since``, an upper bound of what is written.
    """

    def __init__(
        self,
        store: SessionStore,
        namespace: str,
        *,
        now_ms: int,
        updated_since_ms: int | None = None,
    ) -> None:
        self._store = store
        self.namespace = namespace
        self.exported_at_ms = now_ms
        self.updated_since_ms = updated_since_ms
        self.total: int | None = None
        self.sessions = 0
        self.messages = 0

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        """The export; the first list page is read before the header is given, so that
        a store that fails at once fails before any byte is written."""
        store, namespace, now = self._store, self.namespace, self.exported_at_ms
        page = await store.list_sessions(namespace, limit=LIST_PAGE, now=now, filters=EVERY)
        self.total = page.total
        yield header_line(namespace, now, self.updated_since_ms)
        while True:
            listed = orjson.loads(page.json())
            for item in listed["sessions"]:
                if (
                    self.updated_since_ms is not None
                    and time_of(item["updated_at"]) < self.updated_since_ms
                ):
                    return
                async for chunk in self._session(item["id"]):
                    yield chunk
            cursor = listed["next_cursor"]
            if cursor is None:
                return
            page = await store.list_sessions(
                namespace, limit=LIST_PAGE, now=now, cursor=cursor, filters=EVERY
            )

    async def _session(self, session_id: str) -> AsyncGenerator[bytes, None]:
        """One session's line, its messages a page at a time."""
        store, namespace = self._store, self.namespace
        try:
            session = await store.get_session(namespace, session_id, now=self.exported_at_ms)
        except SessionNotFound:
            return  # deleted since it was listed
        fields = session.as_dict()
        for name in DERIVED_FIELDS:
            fields.pop(name, None)
        head = orjson.dumps(fields)
        yield head[:-1] + b',"messages":['
        written = 0
        while True:
            try:
                total, page = await store.messages_from(
                    namespace, session_id, first=written, count=MESSAGE_PAGE
                )
            except SessionNotFound:
                break  # deleted while exported: the messages read so far stand
            if page:
                body = b",".join(orjson.dumps(message.as_dict()) for message in page)
                yield (b"," + body) if written else body
                written += len(page)
                self.messages += len(page)
            if not page or written >= total:
                break
        self.sessions += 1
        yield b'],"message_count":%d}\n' % written


# --- reading ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Header:
    namespace: str
    exported_at_ms: int
    updated_since_ms: int | None
    version: int


def _object(raw: bytes | str, line: int) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise NdjsonError(line, f"not valid JSON ({error})") from None
    if not isinstance(value, dict):
        raise NdjsonError(line, "not a JSON object")
    return value


def parse_header(raw: bytes | str, line: int = 1) -> Header:
    value = _object(raw, line)
    if value.get("format") != FORMAT:
        raise NdjsonError(
            line, f'not a chatsessions export: the header\'s format is not "{FORMAT}"'
        )
    version = value.get("version")
    if version != VERSION:
        raise NdjsonError(
            line, f"format version {version!r}; this chatsessions reads version {VERSION}"
        )
    namespace = value.get("namespace")
    if not isinstance(namespace, str) or not namespace:
        raise NdjsonError(line, "the header has no namespace")
    try:
        exported_at = time_of(value.get("exported_at"))
        since = value.get("updated_since")
        updated_since = None if since is None else time_of(since)
    except ValueError as error:
        raise NdjsonError(line, f"the header's times: {error}") from None
    return Header(namespace, exported_at, updated_since, version)


def parse_session(raw: bytes | str, line: int) -> SessionRecord:
    """A session line, every field checked as the API checks it; :class:`NdjsonError`
    names the first field that is wrong."""
    value = _object(raw, line)
    field = "id"
    try:
        session_id = check_session_id(value.get("id"), "id")
        field = "channel"
        channel = check_channel(value.get("channel"))
        field = "title"
        title = check_title(value.get("title"))
        field = "title_source"
        title_source = value.get("title_source")
        if title_source not in TITLE_SOURCES:
            raise ValueError(f"must be one of {', '.join(TITLE_SOURCES)}")
        field = "created_at"
        created = time_of(value.get("created_at"))
        field = "updated_at"
        updated = time_of(value.get("updated_at"))
        field = "metadata"
        metadata = _metadata(value.get("metadata"))
        # Organisation (SPEC §7), optional: files of releases before 0.3 have none.
        field = "pinned"
        pinned = check_flag(value.get("pinned", False), field)
        field = "archived"
        archived = check_flag(value.get("archived", False), field)
        field = "tags"
        tags = tuple(check_tags(value.get("tags", [])))
        field = "user"
        user = value.get("user")
        user = None if user is None else check_user(user)
        field = "messages"
        items = value.get("messages")
        if not isinstance(items, list):
            raise ValueError("must be a list")
        messages = []
        for position, item in enumerate(items):
            field = f"messages[{position}]"
            messages.append(_message(item))
        field = "message_count"
        if value.get("message_count") != len(messages):
            raise ValueError(
                f"is {value.get('message_count')!r}, but the line holds {len(messages)}"
            )
    except InvalidInput as error:
        raise NdjsonError(line, f"{field}: {error.detail}") from None
    except ValueError as error:
        raise NdjsonError(line, f"{field}: {error}") from None
    return SessionRecord(
        id=session_id,
        channel=channel,
        title=title,
        title_source=title_source,
        created_at_ms=created,
        updated_at_ms=updated,
        messages=messages,
        metadata=metadata,
        pinned=pinned,
        archived=archived,
        tags=tags,
        user=user,
    )


def _metadata(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ValueError("must be an object")
    return value or None


def _message(item: Any) -> MessageRecord:
    if not isinstance(item, dict):
        raise ValueError("must be an object")
    message_id = check_session_id(item.get("id"), "id")
    role = item.get("role")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    content = item.get("content")
    if not isinstance(content, str):
        raise ValueError("content must be a string")
    try:
        timestamp = time_of(item.get("timestamp"))
    except ValueError as error:
        raise ValueError(f"timestamp: {error}") from None
    try:
        metadata = _metadata(item.get("metadata"))
    except ValueError as error:
        raise ValueError(f"metadata: {error}") from None
    return MessageRecord(message_id, role, content, timestamp, metadata)


class NdjsonReader:
    """An export read a line at a time: the header at once (:class:`NdjsonError` if it
    is not one), then :meth:`sessions`, which skips a line that is not a valid session
    with one line in :attr:`problems` (an export cut short ends in such a line)."""

    def __init__(self, lines: Iterable[bytes]) -> None:
        self._lines = iter(lines)
        first = next(self._lines, b"")
        if not first.strip():
            raise NdjsonError(1, "the file is empty: an export begins with its header line")
        self.header = parse_header(first)
        self.problems: list[str] = []

    def sessions(self) -> Iterator[SessionRecord]:
        for number, raw in enumerate(self._lines, 2):
            if not raw.strip():
                continue
            try:
                yield parse_session(raw, number)
            except NdjsonError as error:
                self.problems.append(f"{error}; skipped")
