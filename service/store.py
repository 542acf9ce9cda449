"""The Redis store: the only module that knows key names and Lua scripts.

Layout of one namespace ``ns`` (every key carries the hash tag ``{ns}``, so each
script runs on one Redis Cluster slot and namespaces spread over the shards):

``cs:{ns}:card:<id>``           string, the session's card (below)
``cs:{ns}:index``               sorted set, session id scored by updated_at (epoch ms)
``cs:{ns}:channel:<channel>``   sorted set, the same for one channel
``cs:{ns}:messages:<id>``       list of stored messages, in the order they arrived
``cs:{ns}:seen:<id>``           hash, message id -> its position in the list
``cs:{ns}:meta:<id>``           string, the session's metadata as JSON (only when set)

A session card is one string: a title-source byte (``\\x06`` default, ``\\x07``
auto, ``\\x0e`` set by a user), the title as JSON, then created_at, updated_at,
message_count and channel, each after its own marker byte (``\\x01`` to ``\\x04``)::

    \\x0e"Python primes"\\x012024-01-15T10:30:00.000Z\\x022024-01-15T11:45:00.000Z\\x0312\\x04web

A page of the list needs no script: ``MULTI``, ``ZCARD`` and ``ZCOUNT`` for the
total and the active window, and one ``SORT <index> BY nosort DESC LIMIT``
that walks the sorted set by rank and fetches each id's card with
``GET cs:{ns}:card:*``, then ``EXEC``. Scripts cost this Redis several
microseconds per call and about half a microsecond for every value moved between
Redis and Lua; SORT moves none, which is what keeps a page within 40 µs of Redis
time. The handler wraps each card as ``{"id":…,"title":<card>,"active":…}`` and
turns the four markers into field names with four ``bytes.replace`` over the
whole page: no card is parsed on the way out. The markers can never occur
elsewhere: titles and ids are JSON from orjson (control bytes escaped), times
and counts are digits, channels are letters, digits, ``_``, ``.`` and ``-``.
Keeping the field names out of the card keeps it in jemalloc's 96-byte class,
not 160, which pays for a key per session. The active sessions are the first
ranks (the index is ordered by last activity), so no score is read per item.

A stored message is the JSON array ``[id, role, content, timestamp_ms, metadata]``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import itertools
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple, TypeVar, cast

import orjson
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

from .coalesce import Coalescer
from .models import AUTO_TITLE_LENGTH, DEFAULT_TITLE, MessageIn, auto_title, format_time
from .redis_link import Command, ConnectFailed, RedisLink, pack, pack_rest, pack_start

RedisClient = Redis | RedisCluster
T = TypeVar("T")

DEFAULT_TITLE_JSON = orjson.dumps(DEFAULT_TITLE)
# A card's first byte says where its title came from: a control byte, so that a page
# can drop it with one bytes.replace per kind (see _page_of).
TITLE_DEFAULT = "\x06"
TITLE_AUTO = "\x07"
TITLE_USER = "\x0e"
TITLE_SOURCES = {TITLE_DEFAULT: "default", TITLE_AUTO: "auto", TITLE_USER: "user"}
TITLE_SOURCE_FLAGS = tuple(flag.encode() for flag in TITLE_SOURCES)


def markers_to_json(cards: bytes) -> bytes:
    """Cards with their markers replaced by the JSON between their fields, as a list
    item has them (the replaces spelled out: a loop over pairs took thirty more
    bytecodes a request)."""
    return (
        cards.replace(b"\x01", b',"created_at":"')
        .replace(b"\x02", b'","updated_at":"')
        .replace(b"\x03", b'","message_count":')
        .replace(b"\x04", b',"channel":"')
    )


class StoreError(Exception):
    """Base of the store's domain errors."""


class SessionNotFound(StoreError):
    pass


class SessionExists(StoreError):
    pass


class ChannelRequired(StoreError):
    """A message for an unknown session came without the channel to create it."""


class InvalidCursor(StoreError):
    pass


class StoreUnavailable(StoreError):
    """Redis cannot do the work now: unreachable, too slow, or refusing (``reason`` says
    which, in words an operator can act on)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class OutcomeUnknown(StoreUnavailable):
    """A write may or may not have run: its reply was lost and a retry could not tell.

    Every write carries an operation id that its script records, so repeating the
    request with the same ids never applies it twice."""


# Error codes Redis answers when it cannot do the work now, and how to say so.
REFUSALS = {
    "LOADING": "Redis is loading its data into memory (LOADING)",
    "OOM": "Redis is out of memory (OOM)",
    "NOAUTH": "Redis refused the service's credentials (NOAUTH)",
    "WRONGPASS": "Redis refused the service's credentials (WRONGPASS)",
    "NOPERM": "Redis refused the service's user this command (NOPERM)",
    "READONLY": "Redis is a read-only replica, failing over (READONLY)",
    "MASTERDOWN": "Redis lost its master (MASTERDOWN)",
    "CLUSTERDOWN": "the Redis Cluster is down (CLUSTERDOWN)",
    "TRYAGAIN": "the Redis Cluster is moving this data (TRYAGAIN)",
    "BUSY": "Redis is busy running a long script (BUSY)",
    "MISCONF": "Redis cannot persist its data (MISCONF)",
    "NOREPLICAS": "Redis has too few replicas to accept writes (NOREPLICAS)",
    "EXECABORT": "Redis refused a transaction (EXECABORT)",
}
# Redis 6.2 reports an error raised inside a script as "ERR Error running script ...
# -CODE ...", 7.0 and later as "CODE ... script: ...".
_SCRIPT_ERROR_CODE = re.compile(r"-([A-Z]+) ")


# redis-py's own parser strips the code from these and raises a class instead.
_REFUSAL_CLASSES: tuple[tuple[type[Exception], str], ...] = (
    (redis_errors.BusyLoadingError, "LOADING"),
    (redis_errors.AuthenticationError, "NOAUTH"),
    (redis_errors.AuthenticationWrongNumberOfArgsError, "NOAUTH"),
    (redis_errors.NoPermissionError, "NOPERM"),
    (redis_errors.ReadOnlyError, "READONLY"),
    (redis_errors.OutOfMemoryError, "OOM"),
    (redis_errors.ExecAbortError, "EXECABORT"),
    (redis_errors.MasterDownError, "MASTERDOWN"),
    (redis_errors.ClusterDownError, "CLUSTERDOWN"),
    (redis_errors.TryAgainError, "TRYAGAIN"),
)


def refusal_of(error: Exception) -> str | None:
    """The reason Redis gave for refusing, when ``error`` means "cannot now"."""
    message = str(error)
    code = message.split(" ", 1)[0]
    if code == "ERR" and "Error running script" in message:
        found = _SCRIPT_ERROR_CODE.search(message)
        code = found.group(1) if found else code
    if code in REFUSALS:
        return REFUSALS[code]
    if "Protocol error: unauthenticated" in message:
        # Redis 7 closes a connection that sends a long command before authenticating.
        return REFUSALS["NOAUTH"]
    for kind, kind_code in _REFUSAL_CLASSES:
        if isinstance(error, kind):
            return REFUSALS[kind_code]
    return None


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "message_count": self.message_count,
            "channel": self.channel,
            "active": self.active,
            "title_source": self.title_source,
            "metadata": self.metadata if self.metadata is not None else {},
        }


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
                    b',"next_cursor":',
                    orjson.dumps(self.next_cursor),
                    b"}",
                ]
            )
        return self._json


class PageQuery(NamedTuple):
    """What a list page asks for, but the time: equal queries can share a read."""

    namespace: str
    limit: int
    offset: int | None
    cursor: str | None
    channel: str | None
    active: bool | None


@dataclass(slots=True)
class IngestResult:
    """A message's ingest and its session as the script left it, still as stored: the
    answer is joined from the card's bytes as a list item is (building the Session and
    two dicts for orjson was a fifth of a single ingest's own work), and the Session is
    parsed only when asked for."""

    created: bool
    message: Message
    session_id: str
    card: bytes
    active: bool
    metadata_json: bytes | None

    @property
    def session(self) -> Session:
        return session_of(self.session_id, self.card, self.active, self.metadata_json)

    @property
    def message_count(self) -> int:
        return card_message_count(self.card)

    @property
    def began_session(self) -> bool:
        """Whether the message was the session's first."""
        return self.created and self.message_count == 1

    def json(self) -> bytes:
        """The answer: ``{"message": …, "session": …}``."""
        return b"".join(
            [
                b'{"message":',
                # A dict, not the dataclass: orjson reads a slotted dataclass twice as slowly.
                orjson.dumps(self.message.as_dict()),
                b',"session":',
                session_json(self.session_id, self.card, self.active, self.metadata_json),
                b"}",
            ]
        )


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


@dataclass(frozen=True, slots=True)
class SearchCursor:
    """Go on in the session (``score``, ``member``) after its ``scanned`` newest
    messages, or after that session when ``scanned`` is 0."""

    score: int
    member: str
    scanned: int


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


# Card helpers shared by every script that reads or rewrites a card.
_LUA_CARD = """
local function card_parse(card)
  local b = string.find(card, '\\1', 2, true)
  local c = string.find(card, '\\2', b, true)
  local d = string.find(card, '\\3', c, true)
  local e = string.find(card, '\\4', d, true)
  return {
    source = string.sub(card, 1, 1),
    title = string.sub(card, 2, b - 1),
    created = string.sub(card, b + 1, c - 1),
    updated = string.sub(card, c + 1, d - 1),
    count = tonumber(string.sub(card, d + 1, e - 1)),
    channel = string.sub(card, e + 1),
  }
end
local function card_render(s)
  return s.source .. s.title .. '\\1' .. s.created .. '\\2' .. s.updated .. '\\3'
    .. string.format('%d', s.count) .. '\\4' .. s.channel
end
"""

# A user message whose content is ASCII sends this instead of its auto title: the
# script derives the title itself, and only for the message that gets to set it (the
# first stored user message of a session without a title). Working out every user
# message's title in Python was a sixth of a batch's instructions. Content beyond
# ASCII is titled in Python, where str.split knows Unicode's whitespace.
DERIVE_TITLE = "+"

# The auto title of ASCII content, in the script: as models.auto_title words and cuts it
# (the first 40 words; Python's ASCII whitespace includes bytes 28 to 31; cut at a word
# to at most AUTO_TITLE_LENGTH characters, with an ellipsis) and as orjson writes it.
_LUA_TITLE = r"""
local auto_title_length = AUTO_TITLE_LENGTH
local derive_title = 'DERIVE_TITLE'
local json_short = {['"'] = '\\"', ['\\'] = '\\\\', ['\8'] = '\\b', ['\12'] = '\\f'}

local function json_escape(c)
  local byte = string.byte(c)
  if byte == 127 then return c end
  return json_short[c] or string.format('\\u%04x', byte)
end

local function ascii_title(content)
  local words = {}
  for word in string.gmatch(content, '[^%s\28-\31]+') do
    words[#words + 1] = word
    if #words == 40 then break end
  end
  if #words == 0 then return '' end
  local title = table.concat(words, ' ')
  if #title > auto_title_length then
    local cut = string.sub(title, 1, auto_title_length - 1)
    local space = string.match(cut, '.*() ')
    if space then cut = string.sub(cut, 1, space - 1) end
    title = string.gsub(cut, '[ ,.;:%-]+$', '') .. '\226\128\166'
  end
  return '"' .. string.gsub(title, '[%c"\\]', json_escape) .. '"'
end

-- The title JSON a message gives a session that has none ('' for none): as sent, or
-- worked out here from the stored message [id, role, content, ...].
local function message_title(title, stored)
  if title == derive_title then return ascii_title(cjson.decode(stored)[3]) end
  return title
end
""".replace("AUTO_TITLE_LENGTH", str(AUTO_TITLE_LENGTH)).replace("DERIVE_TITLE", DERIVE_TITLE)

# The one ingest rule, shared by INGEST (one message) and INGEST_MANY (a batch).
# ingest_run applies messages[first..last], all of one session, in order: the same
# outcome as one call per message, but the run reads the card, its score and its seen
# message ids once, and writes the card, the index entries, the messages and the seen
# ids once (each redis.call costs a few microseconds; per message, they were most of a
# batch's time). A message is {session id, channel ('' if not sent), message id, time
# ms (a string), time RFC 3339, stored message, auto title argument (auto_title_arg)}.
# Appends per message to replies: status (1 stored, 0 message id seen before: nothing
# changes, -1 unknown session and no channel), the message count after it, and the
# stored message when it was seen before (else ''). Returns the session (a parsed card,
# nil if none) and its score.
_LUA_INGEST = (
    _LUA_CARD
    + _LUA_TITLE
    + """
local function ingest_run(card_key, list, seen, index, channel_prefix, default_title,
                          messages, first, last, replies)
  local id = messages[first][1]
  local card = redis.call('GET', card_key)
  local s, score, score_text
  if card then
    s = card_parse(card)
    score = tonumber(redis.call('ZSCORE', index, id))
  end
  -- Seen ids matter once the session exists: a lone message of a new session needs none.
  local positions = {}
  if card or last > first then
    local message_ids = {}
    for k = first, last do message_ids[#message_ids + 1] = messages[k][3] end
    positions = redis.call('HMGET', seen, unpack(message_ids))
  end
  local pushed, seen_pairs, pending = {}, {}, {}
  for k = first, last do
    local m = messages[k]
    local message_id = m[3]
    local position = positions[k - first + 1]
    if s and (position or pending[message_id]) then
      local stored = pending[message_id] or redis.call('LINDEX', list, position)
      replies[#replies + 1] = 0
      replies[#replies + 1] = s.count
      replies[#replies + 1] = stored
    elseif not s and m[2] == '' then
      replies[#replies + 1] = -1
      replies[#replies + 1] = 0
      replies[#replies + 1] = ''
    else
      if not s then
        s = {source = '\\6', title = default_title, created = m[5], updated = m[5],
             count = 0, channel = m[2]}
      end
      local ts = tonumber(m[4])
      if score == nil or ts > score then
        score, score_text = ts, m[4]
        s.updated = m[5]
      end
      s.count = s.count + 1
      if s.source == '\\6' and m[7] ~= '' then
        local title = message_title(m[7], m[6])
        if title ~= '' then
          s.title = title
          s.source = '\\7'
        end
      end
      pushed[#pushed + 1] = m[6]
      seen_pairs[#seen_pairs + 1] = message_id
      seen_pairs[#seen_pairs + 1] = #pushed
      pending[message_id] = m[6]
      replies[#replies + 1] = 1
      replies[#replies + 1] = s.count
      replies[#replies + 1] = ''
    end
  end
  if #pushed == 0 then return s, score end
  local before = redis.call('RPUSH', list, unpack(pushed)) - #pushed
  for n = 2, #seen_pairs, 2 do seen_pairs[n] = before + seen_pairs[n] - 1 end
  redis.call('HSET', seen, unpack(seen_pairs))
  redis.call('SET', card_key, card_render(s))
  if score_text then
    redis.call('ZADD', index, score_text, id)
    redis.call('ZADD', channel_prefix .. s.channel, score_text, id)
  end
  return s, score
end
"""
)

# Fields joined by NUL bytes (FIELDS_SEPARATOR) travel as one argument: Redis makes a
# Lua string of every argument of every call, and hiredis formats each one.
_LUA_FIELDS = """
local function split_fields(text)
  local fields, start = {}, 1
  while true do
    local stop = string.find(text, '\\0', start, true)
    fields[#fields + 1] = string.sub(text, start, (stop or 0) - 1)
    if not stop then return fields end
    start = stop + 1
  end
end
"""
FIELDS_SEPARATOR = "\0"

# How long a write's operation id is kept: longer than the service's one retry can
# come after the first try (a round-trip deadline and a reconnect), short enough that
# the ids of a busy namespace stay a small part of its memory.
OPERATION_TTL_MS = 10_000

# KEYS[1] index
# ARGV[1] card key prefix, ARGV[2] messages key prefix, ARGV[3] seen key prefix, ARGV[4]
# meta key prefix, ARGV[5] channel key prefix, ARGV[6] operation key prefix, ARGV[7]
# default title as JSON: the same in every call for a namespace (see ingest_start)
# ARGV[8] the message's fields, joined by NUL bytes (FIELDS_SEPARATOR), ARGV[9]
# stored message
# Returns {status, card, score, stored message, metadata or false}, or {-1} (see
# _LUA_INGEST). A message stored records the call's operation id, so that the same call
# sent again (a retry after a lost reply) answers "stored", not "seen before".
INGEST = (
    _LUA_FIELDS
    + _LUA_INGEST
    + """
local session_id, channel, message_id, ms, time_text, title, operation =
  unpack(split_fields(ARGV[8]))
local operation_key = ARGV[6] .. operation
local replies = {}
local message = {session_id, channel, message_id, ms, time_text, ARGV[9], title}
local s, score = ingest_run(ARGV[1] .. session_id, ARGV[2] .. session_id,
  ARGV[3] .. session_id, KEYS[1], ARGV[5], ARGV[7], {message}, 1, 1, replies)
local status, stored = replies[1], replies[3]
if status < 0 then return {-1} end
if status == 1 then
  stored = ARGV[9]
  redis.call('SET', operation_key, '1', 'PX', OPERATION_TTL_MS)
elseif redis.call('EXISTS', operation_key) == 1 then
  status = 1
end
return {status, card_render(s), score and string.format('%d', score) or false, stored,
  redis.call('GET', ARGV[4] .. session_id)}
""".replace("OPERATION_TTL_MS", str(OPERATION_TTL_MS))
)
# INGEST's eighth argument: session id, channel ('' if not sent), message id, message
# time ms, message time RFC 3339, auto title (auto_title_arg), operation id, joined by
# FIELDS_SEPARATOR. None of them holds a NUL byte: ids and channels hold no control
# characters, and the title is JSON.

# KEYS[1] index
# ARGV[1] channel key prefix, ARGV[2] messages key prefix, ARGV[3] seen key prefix,
# ARGV[4] default title as JSON, ARGV[5] the messages as one JSON array of messages
# (see _LUA_INGEST), ARGV[6] card key prefix, ARGV[7] the call's operation key
# Returns per message: status, message count, and the stored message when it was seen
# before (else ''). One call writes many messages, and they travel as one argument.
# Consecutive messages of one session go to ingest_run as one run. The operation key
# keeps, per message, the session's message count just after this call stored it (0 if
# it did not), so that the same call sent again answers exactly as the first did.
INGEST_MANY = (
    _LUA_INGEST
    + """
local replies = {}
local messages = cjson.decode(ARGV[5])
local first = 1
for k = 1, #messages do
  local id = messages[first][1]
  if k == #messages or messages[k + 1][1] ~= id then
    ingest_run(ARGV[6] .. id, ARGV[2] .. id, ARGV[3] .. id, KEYS[1], ARGV[1], ARGV[4],
      messages, first, k, replies)
    first = k + 1
  end
end
local counts, any_stored = {}, false
for k = 1, #messages do
  local stored_here = replies[3 * k - 2] == 1
  counts[k] = stored_here and replies[3 * k - 1] or 0
  any_stored = any_stored or stored_here
end
if any_stored then
  redis.call('SET', ARGV[7], cjson.encode(counts), 'PX', OPERATION_TTL_MS)
else
  local earlier = redis.call('GET', ARGV[7])
  if earlier then
    for k, count in ipairs(cjson.decode(earlier)) do
      if count > 0 then
        replies[3 * k - 2] = 1
        replies[3 * k - 1] = count
        replies[3 * k] = ''
      end
    end
  end
end
return replies
""".replace("OPERATION_TTL_MS", str(OPERATION_TTL_MS))
)

# rank_after(index, cs, cm): the rank, in the index's descending order, of the first
# session after the one a cursor names (score cs, member cm): just below it while it has
# not moved, else after everything that sorts before (cs, cm) (a higher score, or the
# same score and a greater member, as ZREVRANGE orders ties).
_LUA_RANK_AFTER = """
-- Byte order, as Redis orders members: Lua's string '>' follows the server's locale.
local function bytes_after(a, b)
  local i = 1
  while true do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return y == nil or (x ~= nil and x > y) end
    if x == nil then return false end
    i = i + 1
  end
end
local function rank_after(index, cs, cm)
  local rank = redis.call('ZREVRANK', index, cm)
  if rank and tonumber(redis.call('ZSCORE', index, cm)) == tonumber(cs) then
    return rank + 1
  end
  local start = redis.call('ZCOUNT', index, '(' .. cs, '+inf')
  for _, member in ipairs(redis.call('ZRANGEBYSCORE', index, cs, cs)) do
    if bytes_after(member, cm) then start = start + 1 end
  end
  return start
end
"""

# The page in Lua, for what SORT cannot serve in one round trip: the inactive filter (its
# first rank is only known inside Redis) and a cursor whose session has moved since the
# cursor was made. See SessionStore.list_sessions for the pages that need no script.
# KEYS[1] sorted set to page (index or one channel's)
# ARGV[1] the rank the cursor expects its member at, just before the page ('' for none),
# ARGV[2] cursor member, ARGV[3] cursor score ('' both when paging by offset), ARGV[4]
# the rest, joined by NUL (FIELDS_SEPARATOR): limit, offset ('' when paging by cursor),
# active filter ('', '1' active, '0' inactive), active cutoff (epoch ms; scores at or
# above it are active), card key prefix
# Returns -2 when the cursor's member still sits at that rank with its score (the SORT
# sent along in the same transaction then holds the page), else {total, more, first
# rank, active count, ids, cards}. The check comes first and reads no more than it
# needs: one rank, whose member and score are compared as the strings Redis answers
# and the cursor carries (scores are whole milliseconds, which Redis writes in plain
# digits; a cursor whose score reads otherwise only takes the longer way below); four
# arguments, not eight (Redis makes a Lua string of each). That took redis-server's
# instructions for a cursor page from 197-199 k to 179 k (callgrind on redis-server; a
# first page costs it 145-148 k): two scalar reads with numbers parsed cost 184-186 k.
PAGE = (
    _LUA_FIELDS
    + _LUA_RANK_AFTER
    + """
if ARGV[1] ~= '' then
  local at = redis.call('ZREVRANGE', KEYS[1], ARGV[1], ARGV[1], 'WITHSCORES')
  if at[1] == ARGV[2] and at[2] == ARGV[3] then return -2 end
end
local limit, offset, active_filter, cutoff, card_prefix = unpack(split_fields(ARGV[4]))
limit = tonumber(limit)
local n = redis.call('ZCARD', KEYS[1])
local n_active = redis.call('ZCOUNT', KEYS[1], cutoff, '+inf')
local lo, hi = 0, n
if active_filter == '1' then hi = n_active elseif active_filter == '0' then lo = n_active end
local start
if offset ~= '' then
  start = lo + tonumber(offset)
else
  start = rank_after(KEYS[1], ARGV[3], ARGV[2])
  if start < lo then start = lo end
end
local stop = math.min(start + limit, hi) - 1
if start > stop then return {hi - lo, 0, start, n_active, {}, {}} end
local ids = redis.call('ZREVRANGE', KEYS[1], start, stop)
local card_keys = {}
for i, id in ipairs(ids) do card_keys[i] = card_prefix .. id end
local more = 0
if stop + 1 < hi then more = 1 end
return {hi - lo, more, start, n_active, ids, redis.call('MGET', unpack(card_keys))}
"""
)

# The readiness probe's key: outside every namespace, expiring by itself.
READY_KEY = "cs:readiness-probe"
# KEYS[1] READY_KEY
# Returns 1. It writes, so that a Redis refusing writes (OOM, READONLY, MISCONF) is not
# taken for ready.
READY = """
redis.call('SET', KEYS[1], '1', 'PX', 10000)
return 1
"""

# KEYS[1] card, KEYS[2] index, KEYS[3] meta
# ARGV[1] session id
# Returns {card, score, metadata or false}, or an empty table when unknown.
READ = """
local card = redis.call('GET', KEYS[1])
if not card then return {} end
return {card, redis.call('ZSCORE', KEYS[2], ARGV[1]), redis.call('GET', KEYS[3])}
"""

# KEYS[1] card, KEYS[2] index, KEYS[3] channel index, KEYS[4] meta, KEYS[5] operation
# ARGV[1] session id, ARGV[2] card, ARGV[3] score (epoch ms), ARGV[4] metadata ('' if none)
# Returns 1 when created (by this operation, also when it is sent again), 0 when the id
# is taken.
CREATE = """
if redis.call('EXISTS', KEYS[5]) == 1 then return 1 end
if not redis.call('SET', KEYS[1], ARGV[2], 'NX') then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
if ARGV[4] ~= '' then redis.call('SET', KEYS[4], ARGV[4]) end
redis.call('SET', KEYS[5], '1', 'PX', OPERATION_TTL_MS)
return 1
""".replace("OPERATION_TTL_MS", str(OPERATION_TTL_MS))

# KEYS[1] card, KEYS[2] index, KEYS[3] meta
# ARGV[1] session id, ARGV[2] title as JSON
# Returns {card, score, metadata or false}, or an empty table when unknown.
RENAME = (
    _LUA_CARD
    + """
local card = redis.call('GET', KEYS[1])
if not card then return {} end
local s = card_parse(card)
s.title = ARGV[2]
s.source = '\\14'
card = card_render(s)
redis.call('SET', KEYS[1], card)
return {card, redis.call('ZSCORE', KEYS[2], ARGV[1]), redis.call('GET', KEYS[3])}
"""
)

# KEYS[1] card, KEYS[2] index, KEYS[3] messages, KEYS[4] seen, KEYS[5] meta,
# KEYS[6] operation
# ARGV[1] session id, ARGV[2] channel key prefix
# Returns 1 when deleted (by this operation, also when it is sent again), 0 when unknown.
DELETE = (
    _LUA_CARD
    + """
if redis.call('EXISTS', KEYS[6]) == 1 then return 1 end
local card = redis.call('GET', KEYS[1])
if not card then return 0 end
local s = card_parse(card)
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', ARGV[2] .. s.channel, ARGV[1])
redis.call('UNLINK', KEYS[1], KEYS[3], KEYS[4], KEYS[5])
redis.call('SET', KEYS[6], '1', 'PX', OPERATION_TTL_MS)
return 1
""".replace("OPERATION_TTL_MS", str(OPERATION_TTL_MS))
)

# Bytes of stored messages one history page or export step reads at most (always one
# message at least): with messages of up to 64 KiB, a page bounded by count alone could
# hold Redis for tens of milliseconds and the process for tens of megabytes.
PAGE_BYTES = 256 * 1024

# KEYS[1] card, KEYS[2] messages list
# ARGV[1] limit, ARGV[2] before (list position; '' for the newest), ARGV[3] most bytes
# Returns {-1} for an unknown session, else {first position, messages…}: the newest
# messages before ``before``, at most ``limit`` of them and fewer when more would pass
# the bytes, oldest first.
HISTORY = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local limit, max_bytes = tonumber(ARGV[1]), tonumber(ARGV[3])
local first = redis.call('LLEN', KEYS[2])
if ARGV[2] ~= '' then first = math.min(first, tonumber(ARGV[2])) end
local newest_first, bytes, full = {}, 0, false
while not full and first > 0 and #newest_first < limit do
  local take = math.min(10, limit - #newest_first, first)
  local slice = redis.call('LRANGE', KEYS[2], first - take, first - 1)
  for j = #slice, 1, -1 do
    if #newest_first > 0 and bytes + #slice[j] > max_bytes then
      full = true
      break
    end
    newest_first[#newest_first + 1] = slice[j]
    bytes = bytes + #slice[j]
    first = first - 1
  end
end
local page = {first}
for k = #newest_first, 1, -1 do page[#page + 1] = newest_first[k] end
return page
"""


def _two_byte_capitals() -> dict[int, int]:
    """Capitals of U+00C0-U+04FF whose lower case is one character of two UTF-8 bytes."""
    found = {}
    for code in range(0xC0, 0x500):
        upper = chr(code)
        lower = upper.lower()
        if lower != upper and len(lower) == 1 and len(lower.encode()) == 2 == len(upper.encode()):
            found[code] = ord(lower)
    return found


_FOLD_MAP = {code: code + 32 for code in range(ord("A"), ord("Z") + 1)} | _two_byte_capitals()


def fold_case(text: str) -> str:
    """Lower ASCII, Latin, Greek and Cyrillic capitals: exactly what the search script folds."""
    return text.translate(_FOLD_MAP)


def _lua_fold_table() -> str:
    """A Lua table mapping each two-byte UTF-8 capital (Latin, Greek, Cyrillic) to its
    lower case, so that scripts fold case beyond ASCII exactly as :func:`fold_case` does.
    """
    pairs = []
    for upper, lower in _two_byte_capitals().items():
        key = "".join(f"\\{b}" for b in chr(upper).encode())
        value = "".join(f"\\{b}" for b in chr(lower).encode())
        pairs.append(f'["{key}"]="{value}"')
    return "local FOLD = {" + ",".join(pairs) + "}\n"


# Messages per INGEST_MANY call: long enough to save commands, short enough that one
# call holds Redis for a few milliseconds at most.
BATCH_CHUNK = 100
MULTI = pack([("MULTI",)])
EXEC = pack([("EXEC",)])
# One search step's bounds: each step is one script call, and these keep it to about a
# millisecond of Redis time whatever the messages hold (64 KiB each at most, and folding
# non-ASCII text costs several times more per byte than ASCII).
SEARCH_STEP_SESSIONS = 50
SEARCH_STEP_MESSAGES = 400
SEARCH_STEP_BYTES = 64 * 1024
# A query beyond ASCII folds the case of every two-byte character it reads, in Lua.
SEARCH_STEP_BYTES_FOLDED = 8 * 1024
# Steps one request may take before it answers with a next_cursor.
SEARCH_STEPS = 16

# KEYS[1] index
# ARGV[1] folded query, ARGV[2] most hits, ARGV[3] most sessions to scan, ARGV[4] most
# messages to scan, ARGV[5] most bytes of stored messages to read, ARGV[6] messages key
# prefix, ARGV[7] card key prefix, ARGV[8] '1' when the query reads the same inside a
# JSON string (no quote, backslash or control character), so a stored message that does
# not hold it can be passed over undecoded, ARGV[9] score and ARGV[10] member of the
# session to go on from ('' both: from the most recent), ARGV[11] how many of that
# session's newest messages were scanned already (0: go on after that session), ARGV[12]
# '1' when the query holds characters beyond ASCII
# Walks sessions from the most recent, each session's messages from the newest, and
# stops at the first bound reached, in a session if need be. Returns {1 when every
# session was scanned else 0, score, member and scanned messages of where to go on,
# then per hit: id, score, card, matching stored message or ''}.
SEARCH = (
    _LUA_CARD
    + _LUA_RANK_AFTER
    + _lua_fold_table()
    + """
-- An ASCII query can only match ASCII letters, whose case string.lower folds: the
-- table walk over two-byte characters is for queries beyond ASCII.
local wide = ARGV[12] == '1'
local function fold(text)
  if not wide then return string.lower(text) end
  return (string.gsub(string.lower(text), '[\\195-\\211][\\128-\\191]', FOLD))
end
local query, want = ARGV[1], tonumber(ARGV[2])
local max_sessions, max_messages, max_bytes = tonumber(ARGV[3]), tonumber(ARGV[4]),
  tonumber(ARGV[5])
local SLICE = 20
local rank, skip = 0, 0
if ARGV[10] ~= '' then
  local at = redis.call('ZREVRANK', KEYS[1], ARGV[10])
  skip = tonumber(ARGV[11])
  if skip > 0 and at and tonumber(redis.call('ZSCORE', KEYS[1], ARGV[10])) == tonumber(ARGV[9]) then
    rank = at
  else
    skip = 0
    rank = rank_after(KEYS[1], ARGV[9], ARGV[10])
  end
end
local sessions, messages, bytes, found = 0, 0, 0, 0
local function spent()
  return found >= want or sessions >= max_sessions or messages >= max_messages
    or bytes >= max_bytes
end
local hits = {0, '', '', 0}
while not spent() do
  local ranked = redis.call('ZREVRANGE', KEYS[1], rank, rank + 19, 'WITHSCORES')
  if #ranked == 0 then
    hits[1] = 1
    break
  end
  for i = 1, #ranked, 2 do
    if spent() then break end
    local id, score = ranked[i], ranked[i + 1]
    local card = redis.call('GET', ARGV[7] .. id)
    local read_here, done, match = skip, card == false, nil
    skip = 0
    sessions = sessions + 1
    -- Newest first, a slice at a time, so that large messages cannot overrun the bounds.
    while not done and not match and messages < max_messages and bytes < max_bytes do
      local take = math.min(SLICE, max_messages - messages)
      local slice = redis.call('LRANGE', ARGV[6] .. id, -(read_here + take), -(read_here + 1))
      done = #slice < take
      for j = #slice, 1, -1 do
        local stored = slice[j]
        messages, bytes, read_here = messages + 1, bytes + #stored, read_here + 1
        if ARGV[8] ~= '1' or string.find(fold(stored), query, 1, true) then
          if string.find(fold(cjson.decode(stored)[3]), query, 1, true) then
            match = stored
            break
          end
        end
        if bytes >= max_bytes then
          done = done and j == 1
          break
        end
      end
    end
    local title_hit = false
    if card and done and not match then
      title_hit = string.find(fold(cjson.decode(card_parse(card).title)), query, 1, true) ~= nil
    end
    if match or title_hit then
      found = found + 1
      hits[#hits + 1] = id
      hits[#hits + 1] = score
      hits[#hits + 1] = card
      hits[#hits + 1] = match or ''
    end
    hits[2], hits[3], hits[4] = score, id, (done or match) and 0 or read_here
    if not (done or match) then break end
    rank = rank + 1
  end
end
return hits
"""
)

# KEYS[1] card, KEYS[2] messages list
# ARGV[1] first position, ARGV[2] most messages, ARGV[3] most bytes
# Returns {-1} for an unknown session, else {total messages, messages…}: from the first
# position on, fewer than asked when more would pass the bytes (one at least).
MESSAGES_RANGE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {-1} end
local position, count, max_bytes = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local page = {redis.call('LLEN', KEYS[2])}
local bytes = 0
while position < page[1] and #page <= count do
  local take = math.min(10, count - #page + 1)
  local slice = redis.call('LRANGE', KEYS[2], position, position + take - 1)
  if #slice == 0 then break end
  for _, m in ipairs(slice) do
    if #page > 1 and bytes + #m > max_bytes then return page end
    page[#page + 1] = m
    bytes = bytes + #m
    position = position + 1
  end
end
return page
"""


class Keys:
    """Key names of one namespace; all share the namespace's hash tag."""

    def __init__(self, namespace: str) -> None:
        self.prefix = f"cs:{{{namespace}}}:"
        self.index = self.prefix + "index"
        self.channel_prefix = self.prefix + "channel:"
        self.card_prefix = self.prefix + "card:"
        # SORT's GET pattern: the first '*' takes the member, and a namespace has none.
        self.card_pattern = self.card_prefix + "*"
        self.messages_prefix = self.prefix + "messages:"
        self.seen_prefix = self.prefix + "seen:"
        self.meta_prefix = self.prefix + "meta:"
        self.operation_prefix = self.prefix + "op:"

    def card(self, session_id: str) -> str:
        return self.card_prefix + session_id

    def channel(self, channel: str) -> str:
        return self.channel_prefix + channel

    def messages(self, session_id: str) -> str:
        return self.messages_prefix + session_id

    def seen(self, session_id: str) -> str:
        return self.seen_prefix + session_id

    def meta(self, session_id: str) -> str:
        return self.meta_prefix + session_id

    def operation(self, operation_id: str) -> str:
        return self.operation_prefix + operation_id

    def ingest_prefixes(self) -> list[str]:
        """INGEST's key prefixes, in its order."""
        return [
            self.card_prefix,
            self.messages_prefix,
            self.seen_prefix,
            self.meta_prefix,
            self.channel_prefix,
            self.operation_prefix,
        ]


class PageCommands(NamedTuple):
    """A sorted set's page commands (SessionStore._sorted_page), packed as far as they
    are the same for every page: hiredis formats each argument with a sprintf, which
    was a fortieth of a page read alone."""

    total: bytes
    # ZCOUNT's start, to end with the active cutoff and +inf
    active_from: bytes
    # SORT's start (its options may come in any order), to end with LIMIT's two numbers
    sort: bytes


@functools.lru_cache(maxsize=1024)
def page_commands(zset: str, card_pattern: str) -> PageCommands:
    # SORT, not SORT_RO (Redis 7.0 and later): without STORE it only reads, on 6.2 too.
    sort = ("SORT", zset, "BY", "nosort", "DESC", "GET", "#", "GET", card_pattern, "LIMIT")
    return PageCommands(
        total=pack([("ZCARD", zset)]),
        active_from=pack_start(("ZCOUNT", zset), 2),
        sort=pack_start(sort, 2),
    )


@functools.lru_cache(maxsize=1024)
def ingest_head(namespace: str, sha: str) -> tuple[Any, ...]:
    """INGEST's call up to the message's two arguments: the same for every message of
    a namespace."""
    keys = keys_of(namespace)
    return ("EVALSHA", sha, 1, keys.index, *keys.ingest_prefixes(), DEFAULT_TITLE_JSON)


@functools.lru_cache(maxsize=1024)
def ingest_start(namespace: str, sha: str) -> bytes:
    """:func:`ingest_head` packed once (see SessionStore._ingest_command)."""
    return pack_start(ingest_head(namespace, sha), 2)


@functools.lru_cache(maxsize=1024)
def keys_of(namespace: str) -> Keys:
    """The namespace's Keys, made once: a request would otherwise build its names anew."""
    return Keys(namespace)


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


def _reads_same_in_json(text: str) -> bool:
    return not any(c in '"\\' or ord(c) < 0x20 for c in text)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


class SessionStore:
    """Sessions, their index and their messages, in Redis, one round trip per call."""

    def __init__(
        self, redis: RedisClient, *, active_window_ms: int, timeout: float | None = None
    ) -> None:
        """``timeout`` bounds each round trip as a whole; give it when the client itself
        has no socket timeout (see :func:`service.connections.open_redis`)."""
        self._redis = redis
        self._active_window_ms = active_window_ms
        self._timeout = timeout
        self._cluster = isinstance(redis, RedisCluster)
        self._pool = None if isinstance(redis, RedisCluster) else redis.connection_pool
        self._link = (
            None if isinstance(redis, RedisCluster) else RedisLink.for_client(redis, timeout)
        )
        self._initialized = not self._cluster
        self._init_lock = asyncio.Lock()
        self._ingest = redis.register_script(INGEST)
        self._ingest_many = redis.register_script(INGEST_MANY)
        self._page = redis.register_script(PAGE)
        self._read = redis.register_script(READ)
        self._create = redis.register_script(CREATE)
        self._rename = redis.register_script(RENAME)
        self._delete = redis.register_script(DELETE)
        self._history = redis.register_script(HISTORY)
        self._search = redis.register_script(SEARCH)
        self._messages_range = redis.register_script(MESSAGES_RANGE)
        self._ready = redis.register_script(READY)
        self._pages = Coalescer(self._read_page)
        # Operation ids: unique across workers and replicas by a random prefix per store.
        self._operation_prefix = os.urandom(8).hex()
        self._operation_numbers = itertools.count()

    def _operation_id(self) -> str:
        return f"{self._operation_prefix}.{next(self._operation_numbers)}"

    async def _initialize_cluster(self) -> None:
        """Learn the cluster's slots once, before any concurrent use.

        redis-py's asyncio cluster client, first used by many requests at once, opens
        and closes node connections under each other and never recovers (measured
        here: thousands of 'Connection closed' and closed-transport errors out of
        6,400 pages); initialised first, the same load runs clean.
        """
        async with self._init_lock:
            if not self._initialized:
                assert isinstance(self._redis, RedisCluster)
                await self._redis.initialize()
                self._initialized = True

    async def _call(
        self, operation: Callable[[], Awaitable[T]], *, write: bool = False, shared: bool = True
    ) -> T:
        """Run one Redis round trip, turning outages and refusals into
        :class:`StoreUnavailable`.

        A connection lost on the way is tried once more on a fresh one (a Redis restart
        closes every connection): a write's script recognises its own operation id, so
        the second try answers what the first did. A write that may have reached Redis
        and got no answer raises :class:`OutcomeUnknown`.
        """
        sent = False
        for attempt in (1, 2):
            try:
                return await self._round_trip(operation, shared)
            except ConnectFailed as error:
                failure: Exception = error
            except (redis_errors.ConnectionError, ConnectionError) as error:
                reason = refusal_of(error)
                if reason is not None:
                    raise StoreUnavailable(reason) from error
                sent, failure = True, error
            except (TimeoutError, redis_errors.TimeoutError) as error:
                # Not tried again: Redis is there but slow, and another try adds load.
                kind = OutcomeUnknown if write else StoreUnavailable
                raise kind("Redis did not answer in time") from error
            except redis_errors.RedisError as error:
                reason = refusal_of(error)
                if reason is None and isinstance(error, redis_errors.ClusterError):
                    reason = f"the Redis Cluster cannot serve this now ({error})"
                if reason is None:
                    raise
                raise StoreUnavailable(reason) from error
            except OSError as error:
                sent, failure = True, error
            if attempt == 2:
                kind = OutcomeUnknown if write and sent else StoreUnavailable
                raise kind(f"Redis is unreachable ({failure})") from failure
        raise AssertionError("unreachable")

    async def _round_trip(self, operation: Callable[[], Awaitable[T]], shared: bool) -> T:
        """``operation`` under its deadline: the shared link keeps its own (one watchdog
        per connection); other connections get one ``asyncio.timeout`` per round trip."""
        if self._link is not None and shared:
            return await operation()
        async with asyncio.timeout(self._timeout):
            if not self._initialized:
                await self._initialize_cluster()
            return await operation()

    def _script(
        self,
        script: AsyncScript,
        keys: Sequence[str],
        args: Sequence[Any],
        *,
        shared: bool = True,
    ) -> Awaitable[Any]:
        """EVALSHA straight through the client, loading the script once if Redis lacks it.

        redis-py's Script wrapper does the same behind two more layers of calls, which
        show up in a profile of a list request.
        """
        command = ("EVALSHA", script.sha, len(keys), *keys, *args)
        return self._script_command(script, command, shared=shared)

    async def _script_command(
        self, script: AsyncScript, command: Command, *, shared: bool = True
    ) -> Any:
        """``command``, an EVALSHA of ``script``, loading the script if Redis lacks it."""
        # Not through _loading: every layer of coroutine is paid again per request.
        try:
            return (await self._exchange([command], shared=shared))[0]
        except redis_errors.NoScriptError:
            await self._load(script)
            return (await self._exchange([command], shared=shared))[0]

    async def _loading(self, script: AsyncScript, send: Callable[[], Awaitable[T]]) -> T:
        """``send()``, and once more after loading ``script`` if Redis did not have it."""
        try:
            return await send()
        except redis_errors.NoScriptError:
            await self._load(script)
            return await send()

    async def _load(self, script: AsyncScript) -> None:
        if self._cluster:
            # On every master: the cluster client routes a bare SCRIPT LOAD to one node.
            await self._redis.script_load(script.script)
        else:
            await self._exchange([("SCRIPT", "LOAD", script.script)])

    async def _exchange(self, commands: Sequence[Command], *, shared: bool = True) -> list[Any]:
        """Send ``commands`` in one write and read their replies: one round trip.

        This is the request path's way to Redis: through the worker's shared link
        (:mod:`service.redis_link`) when the client is a plain TCP or Unix socket one,
        else through a pooled redis-py connection without its per-command layers
        (retry wrapper, telemetry hooks, a task per write under a socket timeout).
        Expensive steps (``shared=False``) take a pooled connection too, so that the
        pages and writes pipelined on the link never wait behind them.
        The deadline is the link's watchdog, or one ``asyncio.timeout`` around the
        whole round trip (:meth:`_call`, which also tries a lost connection once more).
        The cluster client sends one command.
        """
        link = self._link if shared else None
        if link is not None:
            replies = await link.exchange(pack(commands), len(commands))
            _raise_first_error(replies)
            return replies
        pool = self._pool
        if pool is None:
            assert len(commands) == 1, "the cluster path sends one command at a time"
            return [await self._redis.execute_command(*commands[0])]
        connection = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            await connection.send_packed_command(pack(commands), check_health=False)
            return [await connection.read_response() for _ in commands]
        except BaseException:
            # Replies may be left unread: this connection cannot be used again.
            await connection.disconnect(nowait=True)
            raise
        finally:
            await pool.release(connection)

    async def aclose(self) -> None:
        """Close the store's own connection; the client passed in stays the caller's."""
        if self._link is not None:
            await self._link.aclose()

    async def ping(self) -> None:
        await self._call(lambda: self._exchange([("PING",)]))

    async def ready(self) -> None:
        """Raise :class:`StoreUnavailable` unless Redis runs a script that writes now."""
        await self._call(lambda: self._script(self._ready, [READY_KEY], []))

    def _active(self, score: bytes | None, now: int) -> bool:
        return score is not None and int(score) >= now - self._active_window_ms

    def _session(
        self, session_id: str, card: bytes, score: bytes | None, meta: bytes | None, now: int
    ) -> Session:
        return session_of(session_id, card, self._active(score, now), meta)

    async def list_sessions(
        self,
        namespace: str,
        *,
        limit: int,
        now: int,
        offset: int | None = None,
        cursor: str | None = None,
        channel: str | None = None,
        active: bool | None = None,
    ) -> SessionPage:
        """A page as of ``now`` or later: overlapping equal queries share one round trip
        (:mod:`service.coalesce`), each reading Redis after it arrived."""
        query = PageQuery(namespace, limit, offset, cursor, channel, active)
        return await self._pages.read(query, now)

    async def _read_page(self, query: PageQuery, now: int) -> SessionPage:
        namespace, limit, offset, cursor, channel, active = query
        keys = keys_of(namespace)
        zset = keys.index if channel is None else keys.channel(channel)
        cutoff = now - self._active_window_ms
        after = decode_cursor(cursor) if cursor is not None else None
        if not (self._cluster or active is False or (after is not None and after.rank is None)):
            start = after.rank if after is not None and after.rank is not None else offset or 0
            try:
                return await self._call(
                    lambda: self._sorted_page(keys, zset, start, limit, after, active, cutoff)
                )
            except StoreUnavailable as error:
                # Redis out of memory refuses every command queued in a MULTI, and SORT
                # on 6.2: the page script, which only reads, still runs.
                if error.reason != REFUSALS["OOM"]:
                    raise
        # The inactive filter's first rank is only known inside Redis; redis-py's cluster
        # client cannot send a MULTI/EXEC from asyncio (it nests event loops).
        reply = await self._call(
            lambda: self._script(
                self._page, [zset], self._page_args(keys, limit, offset, after, active, cutoff)
            )
        )
        return _script_page(reply)

    def _page_args(
        self,
        keys: Keys,
        limit: int,
        offset: int | None,
        after: Cursor | None,
        active: bool | None,
        cutoff: int,
        expected_rank: int | None = None,
    ) -> list[Any]:
        active_filter = "" if active is None else ("1" if active else "0")
        rank = "" if expected_rank is None else str(expected_rank - 1)
        member, score = (after.member, str(after.score)) if after else ("", "")
        rest = [str(limit), "" if after else str(offset or 0), active_filter, str(cutoff)]
        return [rank, member, score, FIELDS_SEPARATOR.join([*rest, keys.card_prefix])]

    async def _sorted_page(
        self,
        keys: Keys,
        zset: str,
        start: int,
        limit: int,
        after: Cursor | None,
        active: bool | None,
        cutoff: int,
    ) -> SessionPage:
        """A page from ranks ``start`` on, read by SORT in one transaction.

        After a cursor, the page script rides along: it answers -2 when the cursor's
        session still sorts just before ``start`` (the SORT's page is then right),
        else it builds the page itself. Either way the page is one round trip.
        """
        page = page_commands(zset, keys.card_pattern)
        commands: list[Command] = [
            page.total,
            pack_rest(page.active_from, b"%d" % cutoff, b"+inf"),
            pack_rest(page.sort, b"%d" % start, b"%d" % limit),
        ]
        if after is not None:
            args = self._page_args(keys, limit, None, after, active, cutoff, start)
            commands.append(("EVALSHA", self._page.sha, 1, zset, *args))
        replies = await self._transaction(commands, self._page)
        if after is not None and replies[3] != -2:
            return _script_page(replies[3])
        total, n_active, flat = int(replies[0]), int(replies[1]), replies[2]
        end = total if active is None else n_active
        size = max(min(end - start, limit), 0)
        return _page_of(end, start, n_active, flat[: 2 * size], more=start + size < end)

    async def _transaction(self, commands: Sequence[Command], script: AsyncScript) -> Any:
        """MULTI/EXEC of ``commands``, loading ``script`` if an EVALSHA among them lacks it."""

        async def send() -> list[Any]:
            # MULTI answers OK and each command QUEUED; EXEC answers with every reply.
            replies: list[Any] = (await self._exchange([MULTI, *commands, EXEC]))[-1]
            _raise_first_error(replies)
            return replies

        return await self._loading(script, send)

    async def get_session(self, namespace: str, session_id: str, *, now: int) -> Session:
        keys = keys_of(namespace)
        found = await self._call(
            lambda: self._script(
                self._read, [keys.card(session_id), keys.index, keys.meta(session_id)], [session_id]
            )
        )
        if not found:
            raise SessionNotFound(session_id)
        card, score, meta = found
        return self._session(session_id, card, score, meta or None, now)

    def _ingest_command(
        self, namespace: str, session_id: str, message: MessageIn, timestamp: str
    ) -> Command:
        """INGEST's call: its key and the namespace's prefixes packed once (hiredis formats
        every argument anew, a twentieth of a single ingest's instructions), then the
        message's two arguments; as arguments for the cluster client, which packs itself.
        ``timestamp`` is the message's time as text."""
        fields = FIELDS_SEPARATOR.join(
            [
                session_id,
                message.channel or "",
                message.id,
                str(message.timestamp_ms),
                timestamp,
                auto_title_arg(message),
                self._operation_id(),
            ]
        ).encode()
        stored = stored_message(message)
        if self._cluster:
            return (*ingest_head(namespace, self._ingest.sha), fields, stored)
        return pack_rest(ingest_start(namespace, self._ingest.sha), fields, stored)

    def _ingest_result(
        self, reply: Sequence[Any], session_id: str, message: MessageIn, timestamp: str, now: int
    ) -> IngestResult:
        status = int(reply[0])
        if status < 0:
            raise ChannelRequired(session_id)
        _, card, score, stored, meta = reply
        created = status == 1
        return IngestResult(
            created=created,
            # Stored just now, it is the message sent; a repeat answers with the first one.
            message=message_out(message, timestamp) if created else self._message(stored),
            session_id=session_id,
            card=card,
            active=self._active(score, now),
            metadata_json=meta or None,
        )

    async def add_message(
        self, namespace: str, session_id: str, message: MessageIn, *, now: int
    ) -> IngestResult:
        timestamp = format_time(message.timestamp_ms)
        command = self._ingest_command(namespace, session_id, message, timestamp)
        reply = await self._call(lambda: self._script_command(self._ingest, command), write=True)
        return self._ingest_result(reply, session_id, message, timestamp, now)

    async def add_messages(
        self, namespace: str, items: Sequence[tuple[str, MessageIn]], *, now: int
    ) -> list[BatchOutcome | StoreError]:
        """Ingest many messages in one pipelined round trip, in order.

        Messages go BATCH_CHUNK to a script call; each message is applied atomically
        and in order, as if sent one by one. A session's messages are brought together
        (keeping their order; sessions do not affect each other), so that the script
        reads and writes each session once per run of its messages. The scripts are
        sent by SHA directly, not through redis-py's pipeline script support, which
        would add a SCRIPT EXISTS round trip to every batch.
        """
        if not items:
            return []
        keys = keys_of(namespace)
        head: list[Any] = [
            keys.channel_prefix,
            keys.messages_prefix,
            keys.seen_prefix,
            DEFAULT_TITLE_JSON,
        ]
        session_ids = [session_id for session_id, _ in items]
        order = sorted(range(len(items)), key=session_ids.__getitem__)
        times = [format_time(message.timestamp_ms) for _, message in items]
        rows = []
        for position in order:
            message = items[position][1]
            rows.append(
                [
                    session_ids[position],
                    message.channel or "",
                    message.id,
                    str(message.timestamp_ms),
                    times[position],
                    stored_message(message).decode(),
                    auto_title_arg(message),
                ]
            )
        calls = [
            [
                *head,
                orjson.dumps(rows[start : start + BATCH_CHUNK]),
                keys.card_prefix,
                keys.operation(self._operation_id()),
            ]
            for start in range(0, len(rows), BATCH_CHUNK)
        ]
        replies = await self._call(
            lambda: self._pipelined(self._ingest_many, keys, calls), write=True
        )
        # Each reply holds (status, message count, stored message) per message.
        flat = iter([value for reply in replies for value in reply])
        results: list[BatchOutcome | StoreError | None] = [None] * len(items)
        for position, (status, count, stored) in zip(
            order, zip(flat, flat, flat, strict=True), strict=True
        ):
            if status < 0:
                results[position] = ChannelRequired(session_ids[position])
            elif status == 1:
                stored_as = message_out(items[position][1], times[position])
                results[position] = BatchOutcome(True, stored_as, count)
            else:
                results[position] = BatchOutcome(False, self._message(stored), count)
        return cast(list[BatchOutcome | StoreError], results)

    async def _pipelined(
        self, script: AsyncScript, keys: Keys, calls: Sequence[list[Any]]
    ) -> list[Sequence[Any]]:
        replies: list[Any] = [None] * len(calls)
        pending = list(range(len(calls)))
        for attempt in range(2):
            commands = [("EVALSHA", script.sha, 1, keys.index, *calls[p]) for p in pending]
            answers = await self._all_replies(commands)
            missing = []
            for position, answer in zip(pending, answers, strict=True):
                if isinstance(answer, redis_errors.NoScriptError) and attempt == 0:
                    missing.append(position)
                elif isinstance(answer, Exception):
                    raise answer
                else:
                    replies[position] = answer
            if not missing:
                break
            # A restarted or new server has no scripts yet: load it and send those again.
            await self._load(script)
            pending = missing
        return replies

    async def _all_replies(self, commands: Sequence[Command]) -> list[Any]:
        """One round trip of independent commands; a failed command's error is its reply."""
        if self._link is not None:
            return await self._link.exchange(pack(commands), len(commands))
        async with self._redis.pipeline(transaction=False) as pipe:
            for command in commands:
                # execute_command, not evalsha(): redis-py's cluster pipeline blocks the
                # method (keys could span slots) but routes the command by its keys, and
                # a namespace's keys share one slot.
                pipe.execute_command(*command)
            answers: list[Any] = await pipe.execute(raise_on_error=False)
        return answers

    async def search(
        self, namespace: str, query: str, *, limit: int, now: int, cursor: str | None = None
    ) -> SearchPage:
        """Sessions whose title or messages hold ``query``, most recent first, found in
        bounded steps (one script call each, on a connection of its own so that cheap
        requests never queue behind one); ``next_cursor`` goes on where a page stopped."""
        keys = keys_of(namespace)
        at = decode_search_cursor(cursor) if cursor is not None else None
        head = [
            fold_case(query),
            0,
            SEARCH_STEP_SESSIONS,
            SEARCH_STEP_MESSAGES,
            SEARCH_STEP_BYTES if query.isascii() else SEARCH_STEP_BYTES_FOLDED,
            keys.messages_prefix,
            keys.card_prefix,
            "1" if _reads_same_in_json(query) else "0",
        ]
        wide = "0" if query.isascii() else "1"
        hits: list[SearchHit] = []
        for _ in range(SEARCH_STEPS):
            head[1] = limit - len(hits)
            where = ["", "", 0] if at is None else [at.score, at.member, at.scanned]
            args = [*head, *where, wide]
            reply = await self._call(
                functools.partial(self._script, self._search, [keys.index], args, shared=False),
                shared=False,
            )
            complete, score, member, scanned = reply[:4]
            for position in range(4, len(reply), 4):
                hit_id, hit_score, card, stored = reply[position : position + 4]
                hits.append(
                    SearchHit(
                        session=self._session(_text(hit_id), card, hit_score, None, now),
                        message=self._message(stored) if stored else None,
                    )
                )
            if complete:
                return SearchPage(hits, None)
            if member:
                at = SearchCursor(int(score), _text(member), int(scanned))
            if len(hits) >= limit:
                break
        assert at is not None
        return SearchPage(hits, encode_search_cursor(at))

    async def messages_from(
        self, namespace: str, session_id: str, *, first: int, count: int
    ) -> tuple[int, list[Message]]:
        """Messages from ``first`` on in arrival order, ``count`` at most and fewer when
        their bytes would pass PAGE_BYTES, and the session's total."""
        keys = keys_of(namespace)
        reply = await self._call(
            lambda: self._script(
                self._messages_range,
                [keys.card(session_id), keys.messages(session_id)],
                [first, count, PAGE_BYTES],
                shared=False,
            ),
            shared=False,
        )
        total = int(reply[0])
        if total < 0:
            raise SessionNotFound(session_id)
        return total, [self._message(m) for m in reply[1:]]

    async def create_session(
        self,
        namespace: str,
        session_id: str,
        *,
        channel: str,
        title: str | None,
        metadata: dict[str, Any] | None,
        now: int,
    ) -> Session:
        keys = keys_of(namespace)
        stamp = format_time(now)
        card = render_card(
            TITLE_USER if title else TITLE_DEFAULT,
            title or DEFAULT_TITLE,
            stamp,
            stamp,
            0,
            channel,
        )
        meta = orjson.dumps(metadata) if metadata else b""
        create_keys = [
            keys.card(session_id),
            keys.index,
            keys.channel(channel),
            keys.meta(session_id),
            keys.operation(self._operation_id()),
        ]
        created = await self._call(
            lambda: self._script(self._create, create_keys, [session_id, card, now, meta]),
            write=True,
        )
        if not created:
            raise SessionExists(session_id)
        return self._session(session_id, card, str(now).encode(), meta or None, now)

    async def rename_session(
        self, namespace: str, session_id: str, title: str, *, now: int
    ) -> Session:
        keys = keys_of(namespace)
        found = await self._call(
            lambda: self._script(
                self._rename,
                [keys.card(session_id), keys.index, keys.meta(session_id)],
                [session_id, orjson.dumps(title)],
            ),
            write=True,
        )
        if not found:
            raise SessionNotFound(session_id)
        card, score, meta = found
        return self._session(session_id, card, score, meta or None, now)

    async def delete_session(self, namespace: str, session_id: str) -> None:
        keys = keys_of(namespace)
        delete_keys = [
            keys.card(session_id),
            keys.index,
            keys.messages(session_id),
            keys.seen(session_id),
            keys.meta(session_id),
            keys.operation(self._operation_id()),
        ]
        deleted = await self._call(
            lambda: self._script(self._delete, delete_keys, [session_id, keys.channel_prefix]),
            write=True,
        )
        if not deleted:
            raise SessionNotFound(session_id)

    async def history(
        self, namespace: str, session_id: str, *, limit: int, before: str | None = None
    ) -> MessagePage:
        keys = keys_of(namespace)
        before_position = "" if before is None else str(decode_position(before))
        reply = await self._call(
            lambda: self._script(
                self._history,
                [keys.card(session_id), keys.messages(session_id)],
                [limit, before_position, PAGE_BYTES],
                shared=False,
            ),
            shared=False,
        )
        first = int(reply[0])
        if first < 0:
            raise SessionNotFound(session_id)
        next_cursor = encode_position(first) if first > 0 else None
        return MessagePage([self._message(m) for m in reply[1:]], next_cursor)

    @staticmethod
    def _message(stored: bytes) -> Message:
        message_id, role, content, timestamp_ms, metadata = orjson.loads(stored)
        return Message(message_id, role, content, format_time(timestamp_ms), metadata or {})


def stored_message(message: MessageIn) -> bytes:
    return orjson.dumps(
        [message.id, message.role, message.content, message.timestamp_ms, message.metadata]
    )


def message_out(message: MessageIn, timestamp: str) -> Message:
    """The stored form of a message just written, without reading it back."""
    return Message(message.id, message.role, message.content, timestamp, message.metadata or {})


def auto_title_arg(message: MessageIn) -> str:
    """What the ingest script gets for the title a user message gives a session without
    one: the title as JSON, DERIVE_TITLE, or ``""`` for none."""
    if message.role != "user":
        return ""
    if message.content.isascii():
        return DERIVE_TITLE
    title = auto_title(message.content)
    return orjson.dumps(title).decode() if title else ""


def render_card(
    source: str,
    title: str,
    created_at: str,
    updated_at: str,
    message_count: int,
    channel: str,
) -> bytes:
    """The card as the Lua ``card_render`` writes it."""
    return (
        f"{source}{orjson.dumps(title).decode()}\x01{created_at}\x02{updated_at}"
        f"\x03{message_count}\x04{channel}"
    ).encode()


def card_item(card: bytes) -> dict[str, Any]:
    """A card's fields (without the id, which is its key)."""
    b = card.index(b"\x01")
    c = card.index(b"\x02", b)
    d = card.index(b"\x03", c)
    e = card.index(b"\x04", d)
    return {
        "title": orjson.loads(card[1:b]),
        "created_at": card[b + 1 : c].decode(),
        "updated_at": card[c + 1 : d].decode(),
        "message_count": int(card[d + 1 : e]),
        "channel": card[e + 1 :].decode(),
    }


def card_message_count(card: bytes) -> int:
    return int(card[card.index(b"\x03") + 1 : card.index(b"\x04")])


def session_of(session_id: str, card: bytes, active: bool, meta: bytes | None) -> Session:
    """The session of a card, its activity and its metadata JSON (None: none set)."""
    item = card_item(card)
    return Session(
        id=session_id,
        title=item["title"],
        title_source=TITLE_SOURCES[chr(card[0])],
        channel=item["channel"],
        created_at=item["created_at"],
        updated_at=item["updated_at"],
        message_count=item["message_count"],
        active=active,
        metadata=orjson.loads(meta) if meta else None,
    )


# What follows a session's card fields, by the card's flag byte and whether it is active.
SESSION_TAILS = {
    (flag[0], active): b'","active":%b,"title_source":"%b","metadata":'
    % (orjson.dumps(active), source.encode())
    for flag, source in zip(TITLE_SOURCE_FLAGS, TITLE_SOURCES.values(), strict=True)
    for active in (True, False)
}


def session_json(session_id: str, card: bytes, active: bool, meta: bytes | None) -> bytes:
    """``Session.as_dict()`` as JSON, joined from the card: the card's fields are already
    JSON once its markers are replaced, and the metadata is stored as orjson wrote it."""
    return b"".join(
        [
            b'{"id":',
            orjson.dumps(session_id),
            b',"title":',
            markers_to_json(card[1:]),
            SESSION_TAILS[card[0], active],
            meta or b"{}",
            b"}",
        ]
    )


def card_score(card: bytes) -> int:
    """The card's updated_at in epoch ms: exactly the session's score in the index."""
    return parse_card_time(card[card.index(b"\x02") + 1 : card.index(b"\x03")].decode())


# A page is joined, not formatted: an item is
# ``{"id":"<id>","title":<card>","active":true}``, so the ids and cards go into one list
# between TITLE_AFTER_ID and the separator that closes one item and opens the next, and
# one bytes.join runs over it in C (``bytes %`` per item cost twice as much, and a join
# per item a twentieth of a page read alone). The cards' flag bytes and markers are then
# replaced over the whole page, one byte value at a time (a replace of a longer pattern
# cost ten times more here).
ITEM_OPEN = b'{"id":"'
TITLE_AFTER_ID = b'","title":'
ITEM_CLOSE = {True: b'","active":true}', False: b'","active":false}'}
ITEM_SEPARATOR = {active: close + b"," + ITEM_OPEN for active, close in ITEM_CLOSE.items()}


def _item_parts(flat: list[bytes], active: bool) -> list[bytes]:
    """The parts of the items of sessions that are all active or all inactive, from
    SORT's id-card pairs, for one join.

    Stored ids are valid UTF-8 without control characters; only an id holding a quote
    or a backslash needs orjson, and then the items are built one by one. (``find``,
    not ``in``: a bytes ``in`` first tries its operand as an integer and formats the
    TypeError it catches.)
    """
    if not flat:
        return []
    ids = b"".join(flat[0::2])
    if ids.find(b'"') >= 0 or ids.find(b"\\") >= 0:
        close = ITEM_CLOSE[active]
        items = [
            b'{"id":%b,"title":%b%b' % (orjson.dumps(_text(i)), c, close)
            for i, c in zip(flat[0::2], flat[1::2], strict=True)
        ]
        return [b",".join(items)]
    # [open, id, after id, card, separator, id, after id, card, …, close]: the slots
    # left empty are the odd ones, which take the ids and cards as SORT gave them.
    parts = [ITEM_OPEN, *[b"", TITLE_AFTER_ID, b"", ITEM_SEPARATOR[active]] * (len(flat) // 2)]
    parts[1::2] = flat
    parts[-1] = ITEM_CLOSE[active]
    return parts


def _active_and_inactive(flat: list[bytes], split: int) -> bytes:
    """Items of the first ``split`` sessions marked active, the rest inactive."""
    active, inactive = _item_parts(flat[: 2 * split], True), _item_parts(flat[2 * split :], False)
    return b"".join([*active, b",", *inactive] if active and inactive else active or inactive)


def _page_of(total: int, first: int, n_active: int, flat: list[Any], *, more: bool) -> SessionPage:
    """The page from ranks ``first`` on, from SORT's [id, card, …] (a card may be nil);
    the first ``n_active - first`` items are active."""
    split = min(max(n_active - first, 0), len(flat) // 2)
    try:
        page = _active_and_inactive(flat, split)
    except TypeError:
        # A card missing under an index entry (drift that `chatsessions check` reports)
        # comes back as None, which bytes.join refuses; such entries are left out.
        present = [n for n in range(0, len(flat), 2) if flat[n + 1] is not None]
        page = _active_and_inactive(
            [value for n in present for value in flat[n : n + 2]],
            sum(1 for n in present if n < 2 * split),
        )
    # The title-source flags are control bytes found nowhere else in a page (titles are
    # JSON, ids and channels hold no control characters): they are dropped (a replace
    # that finds none returns the page itself, without a copy).
    for flag in TITLE_SOURCE_FLAGS:
        page = page.replace(flag, b"")
    page = markers_to_json(page)
    next_cursor = None
    last = flat[-1] if flat else None
    if more and last is not None:
        next_cursor = encode_cursor(
            Cursor(card_score(last), _text(flat[-2]), first + len(flat) // 2)
        )
    return SessionPage(total=total, items_json=page, next_cursor=next_cursor)


def _raise_first_error(replies: Sequence[Any]) -> None:
    """Replies read with errors as values (a pipeline, EXEC) raise as a single call would."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply


def _script_page(reply: Sequence[Any]) -> SessionPage:
    total, more, first, n_active, ids, cards = reply
    flat = [value for pair in zip(ids, cards, strict=True) for value in pair]
    return _page_of(int(total), int(first), int(n_active), flat, more=bool(more))


def parse_card_time(text: str) -> int:
    """Epoch milliseconds of a time as :func:`format_time` wrote it."""
    return round(datetime.fromisoformat(text).timestamp() * 1000)


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


# The first release kept every card of a namespace in one hash, as JSON without braces
# after a title-source letter: u"title":"…","created_at":"…",…,"channel":"web".
LEGACY_SOURCES = {"d": TITLE_DEFAULT, "a": TITLE_AUTO, "u": TITLE_USER}


async def migrate_legacy_cards(redis: RedisClient, namespace: str, batch: int = 500) -> int:
    """Move a namespace's cards from the first release's hash to card keys; returns how
    many moved. Safe to run again, and from several workers at once: a card key that
    exists already is kept (SET NX), and each moved field leaves the hash."""
    keys = keys_of(namespace)
    legacy = keys.prefix + "sessions"
    moved = 0
    pending: dict[bytes, bytes] = {}

    async def flush() -> None:
        async with redis.pipeline(transaction=False) as pipe:
            for session_id, card in pending.items():
                item = orjson.loads(b"{" + card[1:] + b"}")
                converted = render_card(
                    LEGACY_SOURCES[chr(card[0])],
                    item["title"],
                    item["created_at"],
                    item["updated_at"],
                    item["message_count"],
                    item["channel"],
                )
                pipe.set(keys.card(_text(session_id)), converted, nx=True)
            pipe.hdel(legacy, *pending)
            await pipe.execute()

    # HSCAN returns every field present from start to end at least once, however many
    # are deleted on the way.
    async for session_id, card in redis.hscan_iter(legacy, count=batch):
        pending[session_id] = card
        if len(pending) >= batch:
            await flush()
            moved += len(pending)
            pending.clear()
    if pending:
        await flush()
        moved += len(pending)
    return moved


@dataclass(slots=True)
class CheckReport:
    """What :meth:`InvariantChecker.check` found in one namespace."""

    namespace: str
    sessions: int = 0
    messages: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class InvariantChecker:
    """Walks a namespace offline and reports drift between its keys.

    It checks: index ⇔ cards, each session in its channel index with the
    same score, no channel index entry without a session, message_count ⇔ the
    stored messages ⇔ the idempotency records, and no messages left without a
    session. Reads go in batched pipelines; it is an operator's tool, not a
    request path, so it may scan.
    """

    BATCH = 500

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis

    async def namespaces(self) -> list[str]:
        found = set()
        async for key in self._redis.scan_iter(match="cs:{*}:index", count=1000):
            name = _text(key)
            found.add(name[len("cs:{") : name.index("}:")])
        return sorted(found)

    async def check(self, namespace: str) -> CheckReport:
        keys = keys_of(namespace)
        report = CheckReport(namespace)
        index = {_text(m): int(s) async for m, s in self._zscan(keys.index)}
        card_ids = [
            _text(key)[len(keys.card_prefix) :]
            async for key in self._redis.scan_iter(match=keys.card_pattern, count=1000)
        ]
        cards: dict[str, bytes] = {}
        for start in range(0, len(card_ids), self.BATCH):
            batch = card_ids[start : start + self.BATCH]
            found = await self._redis.mget([keys.card(i) for i in batch])
            cards.update(
                (i, card) for i, card in zip(batch, found, strict=True) if isinstance(card, bytes)
            )
        report.sessions = len(cards)
        for missing in sorted(index.keys() - cards.keys()):
            report.problems.append(f"index holds {missing!r} but no session has that id")
        for missing in sorted(cards.keys() - index.keys()):
            report.problems.append(f"session {missing!r} is missing from the index")
        channel_of: dict[str, str] = {}
        ids = sorted(cards)
        for start in range(0, len(ids), self.BATCH):
            batch = ids[start : start + self.BATCH]
            async with self._redis.pipeline(transaction=False) as pipe:
                for session_id in batch:
                    pipe.llen(keys.messages(session_id))
                    pipe.hlen(keys.seen(session_id))
                replies = await pipe.execute()
            for position, session_id in enumerate(batch):
                stored, seen = replies[2 * position], replies[2 * position + 1]
                item = card_item(cards[session_id])
                count = item["message_count"]
                channel_of[session_id] = item["channel"]
                report.messages += stored
                if count != stored:
                    report.problems.append(
                        f"session {session_id!r} counts {count} messages but stores {stored}"
                    )
                if seen != stored:
                    report.problems.append(
                        f"session {session_id!r} has {seen} message ids for {stored} messages"
                    )
        channels = set(channel_of.values())
        async for key in self._redis.scan_iter(match=keys.channel_prefix + "*", count=1000):
            channels.add(_text(key)[len(keys.channel_prefix) :])
        for channel in sorted(channels):
            members = {_text(m): int(s) async for m, s in self._zscan(keys.channel(channel))}
            for session_id in sorted(s for s, c in channel_of.items() if c == channel):
                if session_id not in members:
                    report.problems.append(
                        f"session {session_id!r} is missing from the {channel} index"
                    )
                elif session_id in index and members[session_id] != index[session_id]:
                    report.problems.append(
                        f"session {session_id!r} has another score in the {channel} index"
                    )
            for stray in sorted(m for m in members if channel_of.get(m) != channel):
                report.problems.append(f"{channel} index holds {stray!r}, not a {channel} session")
        async for key in self._redis.scan_iter(match=keys.messages_prefix + "*", count=1000):
            session_id = _text(key)[len(keys.messages_prefix) :]
            if session_id not in cards:
                report.problems.append(f"messages of {session_id!r} remain without a session")
        return report

    async def _zscan(self, key: str) -> AsyncIterator[tuple[bytes, float]]:
        async for member, score in self._redis.zscan_iter(key, count=1000):
            yield member, score
