"""Reads a PocketPaw memory store into :class:`SessionRecord`\\ s.

What PocketPaw 0.4 writes (its ``FileMemoryStore``, in ``~/.pocketpaw/memory``):

- ``sessions/<safe key>.json``: one session, a JSON list of its messages in arrival
  order, each ``{"id", "role", "content", "timestamp", "metadata"}``. ``timestamp`` is
  ``datetime.isoformat()``: naive (PocketPaw's default clock is ``datetime.now()``)
  unless the writer gave an aware time, and PocketPaw reads a naive one back as UTC.
  ``role`` is whatever the writer gave, ``null`` included, which PocketPaw reads as
  ``"user"``.
- ``sessions/_index.json``: ``{safe key: {"title", "channel", "created",
  "last_activity", "message_count", "preview"}}``, plus ``"user_title"`` once a person
  renamed the session (``title`` is then the same text, and PocketPaw keeps it as new
  messages arrive). An auto title is the first user message, stripped, cut at 80
  characters, or ``"New Chat"`` when there is none. PocketPaw lists the sessions of
  this index, sorted by the ``last_activity`` string, newest first.
- The session key is ``"<channel>:<chat id>"`` (``"<channel>:<chat id>:<8 hex>"`` for a
  session begun with ``/new``); its safe key replaces every ``:`` and ``/`` with ``_``.
  The index's ``channel`` is the key's prefix, or ``"unknown"`` for a key without one.
- Also in ``sessions/``: ``_aliases.json``, ``<safe key>_compaction.json`` (summaries)
  and ``*.tmp`` (writes in progress). None is a session.

How it maps to chatsessions:

- **id**: the safe key, the id PocketPaw's own list and routes give the session. The
  original key is not on disk (only its safe form is), so it cannot be recovered.
- **channel**: the index's ``channel``; for a store without a readable index, the
  file name's prefix, read as PocketPaw's channel names allow (``google_chat_…`` is
  ``google_chat``).
- **title**: ``user_title`` with title source ``user`` when set, else the index's
  title with source ``auto``; its whitespace collapsed and at most 200 characters, as
  every chatsessions title.
- **times**: epoch milliseconds, naive times read as UTC as PocketPaw reads them.
  created is the index's ``created`` (else the first message's time), updated the
  index's ``last_activity`` or the latest message time if later, as chatsessions
  keeps a session's updated_at at least its every message's time.
- **messages**: in file order; a message's id is ``pp-`` and 32 hex digits of the
  SHA-256 of its session id, position in the file and content, so that reading the
  same store again gives the same ids, and messages PocketPaw appends later get new
  ones.

Odd inputs are skipped, each with one line in :attr:`PocketPawStore.problems`: a file
that is not JSON or not a list of messages, a session file missing from the index
(PocketPaw does not list it), an index entry without its file, a session without
messages, a message with an unknown role, no content or no readable time. A store
whose index is missing or unreadable is read from its files, as PocketPaw's own
``rebuild_session_index`` would.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from ..models import (
    MAX_TIME_MS,
    MAX_TITLE_LENGTH,
    MIN_TIME_MS,
    ROLES,
    InvalidInput,
    check_channel,
    check_session_id,
)
from .records import MessageRecord, SessionRecord

SESSIONS = "sessions"
INDEX = "_index.json"
# PocketPaw's channel names (its message bus's Channel enum), longest first: a file
# name is "<channel>_<chat id>", and some channel names hold "_" themselves.
CHANNELS = tuple(
    sorted(
        (
            "telegram",
            "websocket",
            "cli",
            "discord",
            "slack",
            "whatsapp",
            "signal",
            "matrix",
            "teams",
            "google_chat",
            "webhook",
            "a2a",
            "system",
            "enterprise",
        ),
        key=len,
        reverse=True,
    )
)
UNKNOWN_CHANNEL = "unknown"
DEFAULT_TITLE = "New Chat"
AUTO_TITLE_CHARS = 80
# Routes under /api/sessions/ (SPEC §3): sessions by these ids could not be reached.
RESERVED_IDS = ("search", "counts", "bulk")
ID_PREFIX = "pp-"
ID_HEX_DIGITS = 32
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


class NotAPocketPawStore(ValueError):
    """The folder holds no PocketPaw sessions."""


def message_id(session_id: str, position: int, content: str) -> str:
    """The id of the message at ``position`` (from 0) of session ``session_id``'s file."""
    digest = hashlib.sha256(orjson.dumps([session_id, position, content])).hexdigest()
    return ID_PREFIX + digest[:ID_HEX_DIGITS]


def time_ms(value: Any) -> int | None:
    """Epoch ms of a PocketPaw time (ISO 8601; naive is UTC), None if it is none."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    ms = (parsed - _EPOCH) // _MILLISECOND
    return ms if MIN_TIME_MS <= ms <= MAX_TIME_MS else None


def channel_of_file_name(safe_key: str) -> str:
    """The channel of a session known only by its file name, as PocketPaw names them."""
    for channel in CHANNELS:
        if safe_key.startswith(channel + "_"):
            return channel
    head, underscore, _ = safe_key.partition("_")
    return head if underscore else UNKNOWN_CHANNEL


def auto_title(messages: list[Any]) -> str:
    """PocketPaw's auto title of these messages: the first user message's text."""
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str) and content.strip():
                return content.strip()[:AUTO_TITLE_CHARS]
    return DEFAULT_TITLE


def is_session_file(path: Path) -> bool:
    name = path.name
    return not name.startswith("_") and not name.endswith("_compaction.json")


def is_text(value: str) -> bool:
    """Whether ``value`` can be stored: valid Unicode (no lone surrogate)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def load_json(raw: bytes) -> Any:
    """JSON as PocketPaw wrote it: Python's json module writes NaN and escaped lone
    surrogates, which orjson refuses, so those files are read by json instead."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return json.loads(raw)


class PocketPawStore:
    """A PocketPaw memory folder (the one holding ``sessions/``, or ``sessions/``
    itself), read one session at a time in PocketPaw's list order."""

    def __init__(self, directory: Path | str) -> None:
        root = Path(directory)
        folder = root / SESSIONS
        if not folder.is_dir():
            if not (root / INDEX).is_file():
                raise NotAPocketPawStore(
                    f"{root} is not a PocketPaw memory store: it has no {SESSIONS}/ folder "
                    f"and no {INDEX} (PocketPaw keeps them in ~/.pocketpaw/memory)"
                )
            folder = root
        self.folder = folder
        self._prefix = f"{SESSIONS}/" if folder != root else ""
        self.problems: list[str] = []
        files = {path.stem for path in folder.glob("*.json") if is_session_file(path)}
        index = self._read_index()
        if index is None:
            self._entries: list[tuple[str, dict[str, Any]]] = [(key, {}) for key in sorted(files)]
            return
        # PocketPaw's own order: a stable sort of the index on the last_activity text.
        self._entries = sorted(
            index.items(), key=lambda kv: str(kv[1].get("last_activity", "")), reverse=True
        )
        for key in sorted(files - index.keys()):
            self._problem(
                f"{key}.json",
                f"not in {INDEX}, so PocketPaw does not list it; skipped (PocketPaw's "
                f"rebuild_session_index would add it to the index)",
            )

    def __len__(self) -> int:
        """How many sessions the store lists (some may yet be skipped)."""
        return len(self._entries)

    @property
    def listed_messages(self) -> int:
        """The messages the index counts: what a full read should find, for progress."""
        counts = (entry.get("message_count") for _, entry in self._entries)
        return sum(count for count in counts if isinstance(count, int))

    def sessions(self) -> Iterator[SessionRecord]:
        """Each session that can be imported, in PocketPaw's list order."""
        for key, entry in self._entries:
            record = self._session(key, entry)
            if record is not None:
                yield record

    def _problem(self, name: str, text: str) -> None:
        self.problems.append(f"{self._prefix}{name}: {text}")

    def _read_index(self) -> dict[str, dict[str, Any]] | None:
        """The index's entries; None, with a line, when there is no usable index."""
        path = self.folder / INDEX
        try:
            index = load_json(path.read_bytes())
        except FileNotFoundError:
            self._problem(INDEX, "missing; sessions are read from their files")
            return None
        except (OSError, ValueError) as error:
            self._problem(INDEX, f"unreadable ({error}); sessions are read from their files")
            return None
        if not isinstance(index, dict):
            self._problem(INDEX, "not a JSON object; sessions are read from their files")
            return None
        entries = {}
        for key, entry in index.items():
            if isinstance(entry, dict):
                entries[key] = entry
            else:
                self._problem(INDEX, f"the entry of {key!r} is not an object; skipped")
        return entries

    def _session(self, key: str, entry: dict[str, Any]) -> SessionRecord | None:
        name = f"{key}.json"
        try:
            session_id = check_session_id(key, "session id")
        except InvalidInput as error:
            self._problem(name, f"{error.detail}; skipped")
            return None
        if session_id in RESERVED_IDS:
            self._problem(name, f"{session_id!r} names a route, not a session; skipped")
            return None
        try:
            raw = (self.folder / name).read_bytes()
        except FileNotFoundError:
            self._problem(name, f"listed in {INDEX} but the file does not exist; skipped")
            return None
        except OSError as error:
            self._problem(name, f"cannot be read ({error.strerror}); skipped")
            return None
        try:
            data = load_json(raw)
        except ValueError as error:
            self._problem(name, f"not valid JSON ({error}); skipped")
            return None
        if not isinstance(data, list):
            self._problem(name, "JSON, but not a list of messages; skipped")
            return None
        if not data:
            self._problem(name, "no messages; skipped")
            return None
        messages = [
            message
            for position, item in enumerate(data)
            if (message := self._message(name, session_id, position, item)) is not None
        ]
        if not messages:
            self._problem(name, "no message left to import; skipped")
            return None
        title, title_source = self._title(name, entry, data)
        latest = max(message.timestamp_ms for message in messages)
        last_activity = time_ms(entry.get("last_activity"))
        updated = latest if last_activity is None else max(last_activity, latest)
        created = time_ms(entry.get("created"))
        if created is None:
            created = messages[0].timestamp_ms
        return SessionRecord(
            id=session_id,
            channel=self._channel(name, key, entry),
            title=title,
            title_source=title_source,
            created_at_ms=min(created, updated),
            updated_at_ms=updated,
            messages=messages,
        )

    def _channel(self, name: str, key: str, entry: dict[str, Any]) -> str:
        channel = entry.get("channel")
        if not isinstance(channel, str):
            channel = channel_of_file_name(key)
        try:
            return check_channel(channel)
        except InvalidInput:
            self._problem(
                name,
                f"channel {channel!r} is not a channel name chatsessions takes; "
                f"imported as {UNKNOWN_CHANNEL!r}",
            )
            return UNKNOWN_CHANNEL

    def _title(self, name: str, entry: dict[str, Any], data: list[Any]) -> tuple[str, str]:
        user_title, indexed = entry.get("user_title"), entry.get("title")
        if isinstance(user_title, str) and user_title.strip():
            title, source = user_title, "user"
        elif isinstance(indexed, str) and indexed.strip():
            title, source = indexed, "auto"
        else:
            title, source = auto_title(data), "auto"
        title = " ".join(title.split())
        if not is_text(title):
            self._problem(name, f"title is not valid Unicode; imported as {DEFAULT_TITLE!r}")
            return DEFAULT_TITLE, "auto"
        if len(title) > MAX_TITLE_LENGTH:
            self._problem(name, f"title is over {MAX_TITLE_LENGTH} characters; cut")
            title = title[:MAX_TITLE_LENGTH].rstrip()
        return title, source

    def _message(
        self, name: str, session_id: str, position: int, item: Any
    ) -> MessageRecord | None:
        where = f"message {position + 1}"
        if not isinstance(item, dict):
            self._problem(name, f"{where} is not an object; message skipped")
            return None
        # PocketPaw reads a message stored without a role as the user's.
        role = item.get("role") or "user"
        if role not in ROLES:
            self._problem(
                name,
                f"{where} has the role {role!r}, not one of {', '.join(ROLES)}; message skipped",
            )
            return None
        content = item.get("content")
        if not isinstance(content, str) or not is_text(content):
            self._problem(name, f"{where} has no text content; message skipped")
            return None
        timestamp = time_ms(item.get("timestamp"))
        if timestamp is None:
            self._problem(name, f"{where} has no readable timestamp; message skipped")
            return None
        metadata = item.get("metadata")
        if not isinstance(metadata, dict) or not metadata:
            metadata = None
        else:
            try:
                orjson.dumps(metadata)
            except (orjson.JSONEncodeError, TypeError):
                self._problem(name, f"{where}'s metadata cannot be stored; imported without it")
                metadata = None
        return MessageRecord(
            id=message_id(session_id, position, content),
            role=role,
            content=content,
            timestamp_ms=timestamp,
            metadata=metadata,
        )
