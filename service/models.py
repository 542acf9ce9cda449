"""What callers send, checked: the one place that turns raw JSON into domain values.

Every refusal is an :class:`InvalidInput` carrying the sentence the caller sees
(HTTP 422), so a batch can report it per item and a handler can raise it whole.
"""

from __future__ import annotations

import functools
import math
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

ROLES = ("user", "assistant", "system", "tool")
CHANNEL_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_ID_LENGTH = 256
MAX_TITLE_LENGTH = 200
# Deeper metadata is a mistake or an attack; Redis's Lua JSON decoder stops at 1000 levels.
MAX_METADATA_DEPTH = 32
AUTO_TITLE_LENGTH = 80
DEFAULT_TITLE = "New session"
# A bot clock may run a little ahead; a day ahead is a bug that would pin a session on top.
MAX_FUTURE_MS = 24 * 3600 * 1000
MIN_TIME_MS = 0
MAX_TIME_MS = 253402300799999  # 9999-12-31T23:59:59.999Z
# Epoch seconds beyond this are the year 5138, far past the 24 hours ahead accepted:
# such a number, up to the last millisecond of 9999, is a clock read in milliseconds.
MAX_PLAUSIBLE_SECONDS = 10**11
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Routes under /api/sessions/ that a session id would collide with (SPEC §3).
RESERVED_IDS = ("search", "counts", "bulk")
TAG_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_TAGS = 20
MAX_USER_LENGTH = 256
MAX_READER_LENGTH = 64


class InvalidInput(ValueError):
    """A value the caller sent is missing or out of range (HTTP 422)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(slots=True)
class MessageIn:
    id: str
    role: str
    content: str
    timestamp_ms: int
    metadata: dict[str, Any] | None
    channel: str | None
    # The bot's own id of the person, the same on every channel (None when not sent).
    user: str | None = None


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# A time's ending by its milliseconds, formatted once: every formatted time ends so.
_MILLIS_ENDINGS = ("Z", *(f".{millis:03d}Z" for millis in range(1, 1000)))


def format_time(ms: int) -> str:
    """RFC 3339 in UTC with a ``Z``; milliseconds only when there are any."""
    seconds, millis = divmod(ms, 1000)
    return _second_text(seconds) + _MILLIS_ENDINGS[millis]


@functools.lru_cache(maxsize=4096)
def _second_text(seconds: int) -> str:
    # Cached by second: a batch's messages cluster in few seconds, so strftime runs
    # once per second, not once per message.
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_time(value: Any, field: str = "timestamp") -> int:
    """Epoch milliseconds from an RFC 3339 string or epoch seconds."""
    if isinstance(value, bool):
        raise InvalidInput(f"{field} must be an RFC 3339 string or epoch seconds.")
    if isinstance(value, int | float):
        if MAX_PLAUSIBLE_SECONDS < value <= MAX_TIME_MS:
            seconds = f"{value / 1000:.3f}".rstrip("0").rstrip(".")
            raise InvalidInput(
                f"{field} {value!r} looks like epoch milliseconds; send epoch seconds, not "
                f"milliseconds ({seconds} here), or an RFC 3339 string."
            )
        if not math.isfinite(value) or not MIN_TIME_MS <= value * 1000 <= MAX_TIME_MS:
            raise InvalidInput(f"{field} must be between 1970 and 9999.")
        ms = round(value * 1000)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInput(
                f"{field} is not an RFC 3339 time such as 2024-01-15T10:30:00Z."
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        ms = round(parsed.timestamp() * 1000)
    else:
        raise InvalidInput(f"{field} must be an RFC 3339 string or epoch seconds.")
    if not MIN_TIME_MS <= ms <= MAX_TIME_MS:
        raise InvalidInput(f"{field} must be between 1970 and 9999.")
    if ms > now_ms() + MAX_FUTURE_MS:
        raise InvalidInput(f"{field} is more than 24 hours in the future.")
    return ms


def check_session_id(value: Any, field: str = "id") -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field} must be a string.")
    if not value or len(value) > MAX_ID_LENGTH:
        raise InvalidInput(f"{field} must be 1 to {MAX_ID_LENGTH} characters long.")
    # Printable ASCII holds no control character; anything else is searched.
    if not (value.isascii() and value.isprintable()) and _CONTROL.search(value):
        raise InvalidInput(f"{field} must not contain control characters.")
    if value in (".", ".."):
        # Clients and proxies resolve these as path segments: such a session could
        # be written but never reached again.
        raise InvalidInput(f"{field} cannot be '.' or '..'.")
    if not value.isascii():
        _utf8(value, field)
    return value


def check_new_session_id(value: Any, field: str = "id") -> str:
    """A session id that a write may create: not one of the words routed under
    /api/sessions/, which would make the session unreachable."""
    session_id = check_session_id(value, field)
    if session_id in RESERVED_IDS:
        raise InvalidInput(
            f"{field} cannot be {session_id!r}: /api/sessions/{session_id} is a route of its "
            "own, so such a session could not be read back; choose another id."
        )
    return session_id


def _text(value: Any, field: str, most: int) -> str:
    """A name of 1 to ``most`` characters without control characters."""
    if not isinstance(value, str) or not value or len(value) > most:
        raise InvalidInput(f"{field} must be a string of 1 to {most} characters.")
    if _CONTROL.search(value):
        raise InvalidInput(f"{field} must not contain control characters.")
    _utf8(value, field)
    return value


def check_user(value: Any, field: str = "user") -> str:
    return _text(value, field, MAX_USER_LENGTH)


def check_reader(value: Any, field: str = "reader") -> str:
    return _text(value, field, MAX_READER_LENGTH)


def check_tag(value: Any, field: str = "tag") -> str:
    if not isinstance(value, str) or not TAG_PATTERN.match(value):
        raise InvalidInput(
            f"{field} must be 1 to 64 letters, digits, '_', '-', '.' or ':', such as billing "
            "or vip."
        )
    return value


def check_tags(value: Any) -> list[str]:
    """A session's tags, in the order given, each once."""
    if not isinstance(value, list):
        raise InvalidInput('tags must be a list of tags, such as ["billing", "vip"].')
    tags = list(dict.fromkeys(check_tag(tag, "each tag") for tag in value))
    if len(tags) > MAX_TAGS:
        raise InvalidInput(f"tags holds at most {MAX_TAGS} tags; {len(tags)} were sent.")
    return tags


def check_flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{field} must be true or false.")
    return value


def check_channel(value: Any, field: str = "channel") -> str:
    if not isinstance(value, str) or not _is_channel(value):
        raise InvalidInput(
            f"{field} must be 1 to 64 letters, digits, '_', '.' or '-', such as telegram or web."
        )
    return value


@functools.lru_cache(maxsize=1024)
def _is_channel(value: str) -> bool:
    # A bot sends the same few channel names again and again: match each once.
    return CHANNEL_PATTERN.match(value) is not None


def check_title(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput("title must be a string.")
    title = " ".join(value.split())
    if not title:
        raise InvalidInput("title must not be empty.")
    if len(title) > MAX_TITLE_LENGTH:
        raise InvalidInput(f"title must be at most {MAX_TITLE_LENGTH} characters.")
    _utf8(title, "title")
    return title


def check_metadata(value: Any, max_bytes: int, field: str = "metadata") -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput(f"{field} must be a JSON object.")
    try:
        size = len(orjson.dumps(value))
    except (orjson.JSONEncodeError, TypeError):
        raise InvalidInput(f"{field} holds a value that cannot be stored as JSON.") from None
    if size > max_bytes:
        raise InvalidInput(f"{field} is {size} bytes; the limit is {max_bytes}.")
    if _depth(value) > MAX_METADATA_DEPTH:
        raise InvalidInput(f"{field} is nested more than {MAX_METADATA_DEPTH} levels deep.")
    return value


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value``, without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def auto_title(content: str) -> str | None:
    """A title from the first user message: its first words, cut at a word."""
    # 80 characters hold at most 40 words; the rest of a long message need not be split.
    words = content.split(maxsplit=40)[:40]
    if not words:
        return None
    title = " ".join(words)
    if len(title) <= AUTO_TITLE_LENGTH:
        return title
    cut = title[: AUTO_TITLE_LENGTH - 1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,.;:-") + "…"


def parse_message(
    body: Any,
    *,
    max_content_bytes: int,
    max_metadata_bytes: int,
    received_ms: int,
) -> MessageIn:
    """One message as a bot sends it; ``id`` is generated when absent, and the time it
    was received (``received_ms``) stands in for a missing timestamp."""
    if not isinstance(body, dict):
        raise InvalidInput("Each message must be a JSON object.")
    role = body.get("role")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}.")
    content = body.get("content")
    if not isinstance(content, str):
        raise InvalidInput("content must be a string.")
    # ASCII is valid UTF-8 of one byte a character: no need to encode it to check.
    size = len(content) if content.isascii() else len(_utf8(content, "content"))
    if size > max_content_bytes:
        raise InvalidInput(f"content is {size} bytes; the limit is {max_content_bytes}.")
    message_id = body.get("id")
    message_id = f"msg_{uuid.uuid4().hex}" if message_id is None else check_session_id(message_id)
    timestamp = body.get("timestamp")
    timestamp_ms = received_ms if timestamp is None else parse_time(timestamp)
    channel = body.get("channel")
    user = body.get("user")
    return MessageIn(
        id=message_id,
        role=role,
        content=content,
        timestamp_ms=timestamp_ms,
        metadata=check_metadata(body.get("metadata"), max_metadata_bytes),
        channel=None if channel is None else check_channel(channel),
        user=None if user is None else check_user(user),
    )


def _utf8(text: str, field: str) -> bytes:
    """``text`` in UTF-8, refused when it cannot be (a lone surrogate).

    orjson already refuses lone surrogates in JSON; this guards values from other paths.
    """
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{field} is not valid Unicode text.") from None
