"""HTTP handlers: parse the request, call the store, serialise the answer."""

from __future__ import annotations

import functools
import os
import uuid
import zlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from .appkeys import METRICS, OPENAPI, PRINCIPAL, SETTINGS, STORE
from .auth import DELETE
from .deadlines import read_body, stream
from .errors import ApiError
from .export import exporter
from .metrics import CONTENT_TYPE, Metrics
from .models import (
    InvalidInput,
    check_channel,
    check_flag,
    check_metadata,
    check_new_session_id,
    check_reader,
    check_session_id,
    check_tag,
    check_tags,
    check_title,
    check_user,
    now_ms,
    parse_message,
)
from .store import (
    NO_FILTER,
    BatchOutcome,
    ChannelRequired,
    IngestResult,
    ListFilter,
    SessionChange,
    SessionNotFound,
    StoreError,
    StoreUnavailable,
)

MAX_LIST_LIMIT = 500
# The reads whose ETag checksum is kept: paths are at most 8 KiB (aiohttp's line limit).
READ_CHECKSUMS = 1024
MAX_HISTORY_LIMIT = 500
MAX_OFFSET = 10**9
MAX_BATCH = 1000
MAX_SEARCH_LIMIT = 100
MAX_QUERY_LENGTH = 200
MATCH_LENGTH = 200
# Hours of activity counts may cover: a week.
MAX_ACTIVITY_HOURS = 168
EXPORT_PAGE = 500
EXPORT_FORMATS = ("json", "md")
JSON_TYPES = ("application/json",)
BULK_ACTIONS = ("archive", "unarchive", "pin", "unpin", "tag", "untag", "delete")
MAX_BULK = 1000
ARCHIVED_CHOICES = {"false": False, "0": False, "true": True, "1": True, "any": None}
FILTER_PARAMETERS = frozenset({"archived", "pinned", "tag", "user", "reader", "unread"})
LIST_PARAMETERS = FILTER_PARAMETERS | {"limit", "offset", "cursor", "channel", "active"}
PATCH_FIELDS = frozenset({"title", "pinned", "archived", "tags", "metadata"})
# How a batch item's status is counted in the batch's answer.
BATCH_COUNTS = {201: "created", 200: "duplicates"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


def namespace_of(request: web.Request) -> str:
    return request[PRINCIPAL].namespace


def path_session_id(request: web.Request) -> str:
    return check_session_id(request.match_info["session_id"], "session id")


def int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be a whole number from {low} to {high}.")
    return value


def bool_param(query: Mapping[str, str], name: str) -> bool | None:
    raw = query.get(name)
    if raw is None:
        return None
    lowered = raw.strip().lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise InvalidInput(f"{name} must be true or false.")


async def read_json(request: web.Request) -> Any:
    """The request body as JSON, refused cleanly when it is not JSON or larger than the
    limit aiohttp enforces as it reads (the app's client_max_size: max_body_bytes)."""
    limit = request.client_max_size
    length = request.content_length
    if length is not None and length > limit:
        raise ApiError(413, f"Body is larger than the limit of {limit} bytes.")
    # The header as nearly every client sends it needs no parsing (aiohttp parses it
    # anew for each request, parameters and all).
    if request.headers.get("Content-Type") != "application/json":
        content_type = request.content_type
        if content_type not in JSON_TYPES and not content_type.endswith("+json"):
            raise ApiError(415, "Send the body as JSON with Content-Type: application/json.")
    try:
        raw = await read_body(request)
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, f"Body is larger than the limit of {limit} bytes.") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        if not raw.strip():
            raise ApiError(400, "Body is empty; send a JSON object.") from None
        raise ApiError(400, f"Body is not valid JSON: {error}.") from None


async def read_object(request: web.Request) -> dict[str, Any]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InvalidInput("Body must be a JSON object.")
    return body


# --- probes -------------------------------------------------------------------------------


async def healthz(request: web.Request) -> web.Response:
    # The pid tells which worker answered, for operators and the workers test.
    return json_response({"status": "ok", "pid": os.getpid()})


async def readyz(request: web.Request) -> web.Response:
    """Ready when Redis takes a write and runs a script now: a Redis that answers PING
    but is loading, out of memory, read-only or refusing the service is not ready."""
    await request.app[STORE].ready()
    return json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def whoami(request: web.Request) -> web.Response:
    """The token's name (the reader a console marks read as), namespace and scopes."""
    principal = request[PRINCIPAL]
    return json_response(
        {
            "name": principal.name,
            "namespace": principal.namespace,
            "scopes": sorted(principal.scopes),
        }
    )


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


# --- sessions -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=READ_CHECKSUMS)
def read_checksum(namespace: str, raw_path: str) -> str:
    """The CRC-32 of a read (its namespace, and its path and query as sent), in hex:
    worked out once for each of the reads most recently seen, since dashboards repeat
    the same few."""
    read = f"{namespace}\0{raw_path}".encode()
    return f"{zlib.crc32(read):08x}"


def entity_tag(request: web.Request, version: str) -> str:
    """The ETag of a read: the namespace's version, which moves with every change of an
    answer, and the read itself (its namespace and its target, path and query as sent),
    so that one tag never stands for two different answers."""
    return f'"{version}.{read_checksum(namespace_of(request), request.raw_path)}"'


def tag_matches(header: str, tag: str) -> bool:
    """Whether the If-None-Match ``header`` names ``tag`` (or is ``*``); a weak tag
    compares equal."""
    # A client sends back the one tag it was given, as it was given.
    if header == tag:
        return True
    candidates = {part.strip().removeprefix("W/") for part in header.split(",")}
    return "*" in candidates or tag in candidates


def not_modified(request: web.Request, header: str, version: str) -> web.Response | None:
    """304 with the tag when the If-None-Match ``header`` holds the current one (of the
    namespace's ``version``); else None (and the read goes on)."""
    tag = entity_tag(request, version)
    if not tag_matches(header, tag):
        return None
    return web.Response(status=304, headers={"ETag": tag})


def list_parameters(query: Mapping[str, str]) -> dict[str, str]:
    """The list's parameters the query holds (the first of a repeated one), in one pass
    over it: a dashboard's query holds one or two of them, and probing the query for
    each of the eleven costs more than the page's own parsing."""
    found: dict[str, str] = {}
    for name, value in query.items():
        if name in LIST_PARAMETERS and name not in found:
            found[name] = value
    return found


def list_filter(query: Mapping[str, str]) -> ListFilter:
    """The list's filters of SPEC §7 from its parameters."""
    if query.keys().isdisjoint(FILTER_PARAMETERS):
        return NO_FILTER
    archived_text = query.get("archived", "false").strip().lower()
    if archived_text not in ARCHIVED_CHOICES:
        raise InvalidInput("archived must be true, false or any.")
    tag, user, reader = query.get("tag"), query.get("user"), query.get("reader")
    unread = bool_param(query, "unread")
    if unread and reader is None:
        raise InvalidInput("unread=true needs reader=<name>: unread is per reader.")
    return ListFilter(
        archived=ARCHIVED_CHOICES[archived_text],
        pinned=bool_param(query, "pinned"),
        tag=None if tag is None else check_tag(tag),
        user=None if user is None else check_user(user),
        reader=None if reader is None else check_reader(reader),
        unread=bool(unread),
    )


async def list_sessions(request: web.Request) -> web.Response:
    now = now_ms()
    # With If-None-Match only the namespace's version is read first; awaited in the
    # handler itself, not in a helper coroutine, so that the wait resumes a frame less.
    if (header := request.headers.get("If-None-Match")) is not None:
        version = await request.app[STORE].version(namespace_of(request), now=now)
        if (answer := not_modified(request, header, version)) is not None:
            return answer
    query = list_parameters(request.query)
    limit = int_param(query, "limit", 50, 1, MAX_LIST_LIMIT)
    cursor = query.get("cursor")
    offset = None
    if "offset" in query:
        if cursor is not None:
            raise InvalidInput("Use either offset or cursor, not both.")
        offset = int_param(query, "offset", 0, 0, MAX_OFFSET)
    raw_channel = query.get("channel")
    channel = None if raw_channel is None else check_channel(raw_channel)
    filters = list_filter(query)
    if offset and filters.scans(channel):
        raise InvalidInput(
            "offset works with at most one of channel, pinned=true, tag and user (and "
            "archived true or false); page these filters with cursor."
        )
    page = await request.app[STORE].list_sessions(
        namespace_of(request),
        limit=limit,
        now=now,
        offset=offset,
        cursor=cursor,
        channel=channel,
        active=bool_param(query, "active"),
        filters=filters,
    )
    return web.Response(
        body=page.json(),
        content_type="application/json",
        headers={"ETag": entity_tag(request, page.version)},
    )


async def create_session(request: web.Request) -> web.Response:
    body = await read_object(request)
    settings = request.app[SETTINGS]
    raw_id = body.get("id")
    session_id = (
        f"session_{uuid.uuid4().hex[:16]}" if raw_id is None else check_new_session_id(raw_id)
    )
    raw_title = body.get("title")
    raw_user = body.get("user")
    session = await request.app[STORE].create_session(
        namespace_of(request),
        session_id,
        channel=check_channel(body.get("channel")),
        title=None if raw_title is None else check_title(raw_title),
        metadata=check_metadata(body.get("metadata"), settings.max_metadata_bytes),
        now=now_ms(),
        user=None if raw_user is None else check_user(raw_user),
    )
    request.app[METRICS].count("sessions_created")
    return json_response(session.as_dict(), status=201)


async def get_session(request: web.Request) -> web.Response:
    now = now_ms()
    session_id = path_session_id(request)
    if (header := request.headers.get("If-None-Match")) is not None:
        version = await request.app[STORE].version(namespace_of(request), now=now)
        if (answer := not_modified(request, header, version)) is not None:
            return answer
    session, version = await request.app[STORE].get_session_version(
        namespace_of(request), session_id, now=now
    )
    response = json_response(session.as_dict())
    response.headers["ETag"] = entity_tag(request, version)
    return response


async def session_counts(request: web.Request) -> web.Response:
    hours = int_param(request.query, "hours", 0, 0, MAX_ACTIVITY_HOURS)
    reader = request.query.get("reader")
    counts = await request.app[STORE].counts(
        namespace_of(request),
        now=now_ms(),
        hours=hours,
        reader=None if reader is None else check_reader(reader),
    )
    return json_response(counts.as_dict())


async def bulk(request: web.Request) -> web.Response:
    body = await read_object(request)
    action = body.get("action")
    if action not in BULK_ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(BULK_ACTIONS)}.")
    if action == "delete" and DELETE not in request[PRINCIPAL].scopes:
        raise ApiError(403, f"This token lacks the {DELETE} scope that delete needs.")
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids or len(ids) > MAX_BULK:
        raise InvalidInput(f"ids must be a list of 1 to {MAX_BULK} session ids.")
    session_ids = list(dict.fromkeys(check_session_id(i, "each id") for i in ids))
    tag = body.get("tag")
    if action in ("tag", "untag"):
        tag = check_tag(tag)
    elif tag is not None:
        raise InvalidInput(f"tag goes with tag and untag, not with {action}.")
    dry_run = check_flag(body.get("dry_run", False), "dry_run")
    outcome = await request.app[STORE].bulk(
        namespace_of(request), action, session_ids, tag=tag, dry_run=dry_run
    )
    return json_response(
        {"matched": outcome.matched, "changed": outcome.changed, "missing": outcome.missing}
    )


async def erase_user(request: web.Request) -> web.Response:
    user = check_user(request.match_info["user"], "user")
    deleted = await request.app[STORE].erase_user(namespace_of(request), user)
    request.app[METRICS].count("sessions_erased", len(deleted))
    return json_response({"deleted": len(deleted), "session_ids": deleted})


async def mark_read(request: web.Request) -> web.Response:
    body = await read_object(request)
    up_to = body.get("message_count")
    if up_to is not None and (
        not isinstance(up_to, int) or isinstance(up_to, bool) or not 0 <= up_to <= MAX_OFFSET
    ):
        raise InvalidInput(f"message_count must be a whole number from 0 to {MAX_OFFSET}.")
    session = await request.app[STORE].mark_read(
        namespace_of(request),
        path_session_id(request),
        check_reader(body.get("reader")),
        up_to=up_to,
        now=now_ms(),
    )
    return json_response(session.as_dict())


def session_change(body: dict[str, Any], max_metadata_bytes: int) -> SessionChange:
    unknown = sorted(set(body) - PATCH_FIELDS)
    if unknown:
        raise InvalidInput(
            f"{unknown[0]} cannot be changed; send any of {', '.join(sorted(PATCH_FIELDS))}."
        )
    if not body:
        raise InvalidInput(f"Send at least one of {', '.join(sorted(PATCH_FIELDS))}.")
    metadata = body.get("metadata")
    return SessionChange(
        title=None if "title" not in body else check_title(body["title"]),
        pinned=None if "pinned" not in body else check_flag(body["pinned"], "pinned"),
        archived=None if "archived" not in body else check_flag(body["archived"], "archived"),
        tags=None if "tags" not in body else tuple(check_tags(body["tags"])),
        metadata=None
        if "metadata" not in body
        else (check_metadata(metadata, max_metadata_bytes) or {}),
    )


async def update_session(request: web.Request) -> web.Response:
    body = await read_object(request)
    change = session_change(body, request.app[SETTINGS].max_metadata_bytes)
    session = await request.app[STORE].update_session(
        namespace_of(request), path_session_id(request), change, now=now_ms()
    )
    return json_response(session.as_dict())


async def set_title(request: web.Request) -> web.Response:
    """PocketPaw's rename: answers only a status."""
    body = await read_object(request)
    await request.app[STORE].rename_session(
        namespace_of(request),
        path_session_id(request),
        check_title(body.get("title")),
        now=now_ms(),
    )
    return json_response({"status": "ok"})


async def delete_session(request: web.Request) -> web.Response:
    await request.app[STORE].delete_session(namespace_of(request), path_session_id(request))
    return json_response({"status": "ok"})


# --- messages -----------------------------------------------------------------------------


def count_ingested(metrics: Metrics, messages: int, sessions: int) -> None:
    """Metrics for ``messages`` stored, ``sessions`` of which each began a session."""
    if messages:
        metrics.count("messages_ingested", messages)
    if sessions:
        metrics.count("sessions_created", sessions)


def ingest_response(result: IngestResult) -> web.Response:
    return web.Response(
        body=result.json(), status=201 if result.created else 200, content_type="application/json"
    )


async def add_message(request: web.Request) -> web.Response:
    # request.app is two calls into Python each time: looked up once.
    app = request.app
    settings = app[SETTINGS]
    session_id = check_new_session_id(request.match_info["session_id"], "session id")
    body = await read_json(request)
    now = now_ms()
    message = parse_message(
        body,
        max_content_bytes=settings.max_content_bytes,
        max_metadata_bytes=settings.max_metadata_bytes,
        received_ms=now,
    )
    result = await app[STORE].add_message(namespace_of(request), session_id, message, now=now)
    if result.created:
        count_ingested(app[METRICS], 1, int(result.began_session))
    return ingest_response(result)


async def history(request: web.Request) -> web.StreamResponse:
    page = await request.app[STORE].history(
        namespace_of(request),
        path_session_id(request),
        limit=int_param(request.query, "limit", 50, 1, MAX_HISTORY_LIMIT),
        before=request.query.get("before"),
    )
    body = orjson.dumps(
        {"messages": [m.as_dict() for m in page.messages], "next_cursor": page.next_cursor}
    )
    return await streamed_json(request, body)


async def streamed_json(request: web.Request, body: bytes) -> web.StreamResponse:
    """A JSON answer of up to a page's bytes, sent in pieces each taken within
    client_timeout: a client that does not read is dropped, not kept."""

    async def whole() -> AsyncGenerator[bytes, None]:
        yield body

    response = web.StreamResponse()
    response.content_type = "application/json"
    response.content_length = len(body)
    return await stream(request, response, whole())


async def add_messages(request: web.Request) -> web.Response:
    """Batch ingest: every valid item goes in one pipelined round trip, each answered."""
    settings = request.app[SETTINGS]
    body = await read_object(request)
    items = body.get("messages")
    if not isinstance(items, list) or not items:
        raise InvalidInput("messages must be a non-empty list of message objects.")
    if len(items) > MAX_BATCH:
        raise InvalidInput(f"A batch holds at most {MAX_BATCH} messages; send several batches.")
    now = now_ms()
    results: list[dict[str, Any] | None] = [None] * len(items)
    valid: list[tuple[str, Any]] = []
    positions: list[int] = []
    for position, item in enumerate(items):
        try:
            if not isinstance(item, dict):
                raise InvalidInput("Each message must be a JSON object.")
            session_id = check_new_session_id(item.get("session_id"), "session_id")
            message = parse_message(
                item,
                max_content_bytes=settings.max_content_bytes,
                max_metadata_bytes=settings.max_metadata_bytes,
                received_ms=now,
            )
        except InvalidInput as error:
            results[position] = {"status": 422, "detail": error.detail}
            continue
        valid.append((session_id, message))
        positions.append(position)
    stored = await request.app[STORE].add_messages(namespace_of(request), valid, now=now)
    # The session's message count after each message stored.
    new_counts = [o.message_count for o in stored if isinstance(o, BatchOutcome) and o.created]
    count_ingested(request.app[METRICS], len(new_counts), new_counts.count(1))
    for position, (session_id, _), outcome in zip(positions, valid, stored, strict=True):
        results[position] = batch_result(session_id, outcome)
    counts = {"created": 0, "duplicates": 0, "failed": 0}
    for result in results:
        assert result is not None
        counts[BATCH_COUNTS.get(result["status"], "failed")] += 1
    return json_response({"results": results, **counts})


def batch_result(session_id: str, outcome: BatchOutcome | StoreError) -> dict[str, Any]:
    if isinstance(outcome, ChannelRequired):
        return {
            "status": 422,
            "session_id": session_id,
            "detail": "channel is required to create a session with its first message.",
        }
    if isinstance(outcome, StoreError):
        raise outcome
    return {
        "status": 201 if outcome.created else 200,
        "session_id": session_id,
        "message": outcome.message.as_dict(),
        "message_count": outcome.message_count,
    }


async def search_sessions(request: web.Request) -> web.Response:
    query = " ".join(request.query.get("q", "").split())
    limit = int_param(request.query, "limit", 20, 1, MAX_SEARCH_LIMIT)
    if len(query) > MAX_QUERY_LENGTH:
        raise InvalidInput(f"q must be at most {MAX_QUERY_LENGTH} characters.")
    if not query:
        return json_response({"sessions": [], "complete": True, "next_cursor": None})
    page = await request.app[STORE].search(
        namespace_of(request),
        query,
        limit=limit,
        now=now_ms(),
        cursor=request.query.get("cursor"),
    )
    return json_response(
        {
            "sessions": [
                {
                    "id": hit.session.id,
                    "title": hit.session.title,
                    "channel": hit.session.channel,
                    "match": (hit.message.content if hit.message else hit.session.title)[
                        :MATCH_LENGTH
                    ],
                    "match_role": hit.message.role if hit.message else None,
                    "last_activity": hit.session.updated_at,
                }
                for hit in page.hits
            ],
            "complete": page.next_cursor is None,
            "next_cursor": page.next_cursor,
        }
    )


async def export_session(request: web.Request) -> web.StreamResponse:
    """The whole session as a download, read from Redis and sent a bounded step at a
    time, each step taken by the client within client_timeout."""
    export_format = request.query.get("format", "json")
    if export_format not in EXPORT_FORMATS:
        raise InvalidInput("format must be json or md.")
    store = request.app[STORE]
    namespace = namespace_of(request)
    session_id = path_session_id(request)
    session = await store.get_session(namespace, session_id, now=now_ms())
    writer = exporter(export_format, session)

    async def chunks() -> AsyncGenerator[bytes, None]:
        yield writer.head()
        first = 0
        try:
            while True:
                total, page = await store.messages_from(
                    namespace, session_id, first=first, count=EXPORT_PAGE
                )
                if page:
                    yield writer.messages(page)
                first += len(page)
                if not page or first >= total:
                    break
        except SessionNotFound:
            pass  # deleted while exporting: what was written so far stands, closed cleanly
        yield writer.tail()

    response = web.StreamResponse(headers={"Content-Disposition": writer.disposition()})
    response.content_type = writer.content_type
    response.charset = "utf-8"
    try:
        return await stream(request, response, chunks())
    except StoreUnavailable:
        # Cut by stream(): the client sees the download incomplete, never a partial file
        # that looks whole.
        return response
