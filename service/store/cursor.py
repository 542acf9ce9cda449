"""Cursors: where the next page of the list, of a search or of a history starts.

Each is base64url JSON, opaque to clients; a cursor that does not decode, or holds
numbers no real cursor holds, is refused with :class:`InvalidCursor`."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import orjson

from .errors import InvalidCursor


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the next page starts: after ``member`` at ``score``, expected at rank ``rank``."""

    score: int
    member: str
    # None for cursors made before ranks were kept: the page script then finds the start.
    rank: int | None = None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def encode_cursor(cursor: Cursor) -> str:
    raw = orjson.dumps([cursor.score, cursor.member, cursor.rank])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


# Scores are epoch milliseconds and ranks list positions: a cursor holding a number
# beyond these was forged, and Redis would refuse it as out of range.
MAX_CURSOR_NUMBER = 2**53

MAX_CURSOR_MEMBER = 1024


def _cursor_fields(text: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        fields = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidCursor(text) from None
    if not isinstance(fields, list):
        raise InvalidCursor(text)
    return fields


def _in_range(value: Any, low: int) -> bool:
    return _is_int(value) and low <= value < MAX_CURSOR_NUMBER


def _member(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_CURSOR_MEMBER


def decode_cursor(text: str) -> Cursor:
    fields = _cursor_fields(text)
    if len(fields) not in (2, 3):
        raise InvalidCursor(text)
    score, member, *rest = fields
    rank = rest[0] if rest else None
    if not _in_range(score, 0) or not _member(member) or not (rank is None or _in_range(rank, 1)):
        raise InvalidCursor(text)
    return Cursor(score, member, rank)


@dataclass(frozen=True, slots=True)
class SearchCursor:
    """Go on in the session (``score``, ``member``) after its ``scanned`` newest
    messages, or after that session when ``scanned`` is 0."""

    score: int
    member: str
    scanned: int


def encode_search_cursor(cursor: SearchCursor) -> str:
    raw = orjson.dumps(["search", cursor.score, cursor.member, cursor.scanned])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_search_cursor(text: str) -> SearchCursor:
    fields = _cursor_fields(text)
    if len(fields) != 4 or fields[0] != "search":
        raise InvalidCursor(text)
    _, score, member, scanned = fields
    if not _in_range(score, 0) or not _member(member) or not _in_range(scanned, 0):
        raise InvalidCursor(text)
    return SearchCursor(score, member, scanned)


def encode_position(position: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(["m", position])).rstrip(b"=").decode("ascii")


def decode_position(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        tag, position = orjson.loads(raw)
    except (binascii.Error, ValueError, TypeError):
        raise InvalidCursor(cursor) from None
    if tag != "m" or not _in_range(position, 0):
        raise InvalidCursor(cursor)
    return int(position)
