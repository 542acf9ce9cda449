"""``GET /api/events``: the token's namespace's change feed as Server-Sent Events (SPEC §6),
and the hub's place in the app.

No gap and no repeat across a reconnect: the request subscribes to the worker's hub
(service/feed.py) first, so that from then on every live event after the reader's
position is queued for it; then it replays from Redis after the client's position, a
page of REPLAY_PAGE events at a time, until a page reaches the stream's newest event,
which is at or after that reader position; then it sends the queued events, skipping
those at or before the last one replayed, and hands the connection to the hub, which
writes the live ones (skipping the same). Before each page the queue is emptied: what
it held was committed before that page is read, so that page or a later one holds it,
and a long replay never fills the queue.

Without a position the stream starts with the events that follow the subscription. A
position that is no longer kept (or was never the stream's) gets a ``reset`` event,
whose id is the stream's newest, then the events after it.

The response is aiohttp-sse's EventSourceResponse: its headers, and its heartbeat
comment every ``events_heartbeat`` seconds (which also finds a client that has gone).
Frames are rendered once by the hub, not per subscriber (see service/feed.py). The
replay and the queue are written in pieces each taken within ``client_timeout``
(service/deadlines.py); live, the hub bounds what the connection holds and drops a
client that takes none of it for ``client_timeout``: a client that stops reading is
dropped, never buffered without bound. Shutdown ends every stream after what it has
queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import suppress

from aiohttp import hdrs, web
from aiohttp_sse import EventSourceResponse

from .appkeys import FEED, SETTINGS, STORE
from .deadlines import ClientGone, drop, send, within_deadline
from .errors import ApiError
from .feed import Ended, FeedClosed, FeedHub, Subscriber, position_key, render
from .handlers import namespace_of
from .models import check_channel, check_session_id, now_ms
from .store import SessionStore, StoreUnavailable
from .store.events import InvalidEventId, Replay, event_id, reset_event

log = logging.getLogger("chatsessions")

# Events per replay round trip.
REPLAY_PAGE = 200


def requested_position(request: web.Request) -> str | None:
    """The position to go on after: the Last-Event-ID header (a reconnecting client's),
    else ``?since=``; None for neither (an empty one counts as none)."""
    for name, raw in (
        ("Last-Event-ID", request.headers.get("Last-Event-ID")),
        ("since", request.query.get("since")),
    ):
        if raw is None or not raw.strip():
            continue
        try:
            return event_id(raw)
        except InvalidEventId:
            raise ApiError(
                400,
                f"{name} is not an event id of this feed: give the id of an event it sent "
                "(such as 1705315500000-0), or 0 for every event still kept.",
            ) from None
    return None


def narrowing(request: web.Request) -> tuple[str | None, str | None]:
    """``?channel=`` and ``?session_id=``, checked (422 for a value no session has)."""
    channel = request.query.get("channel")
    session_id = request.query.get("session_id")
    return (
        None if channel is None else check_channel(channel),
        None if session_id is None else check_session_id(session_id, "session_id"),
    )


async def events(request: web.Request) -> web.StreamResponse:
    settings, store, hub = request.app[SETTINGS], request.app[STORE], request.app[FEED]
    namespace = namespace_of(request)
    position = requested_position(request)
    channel, session_id = narrowing(request)
    try:
        subscriber = await hub.subscribe(
            namespace, channel=channel, session_id=session_id, on_behind=lambda: drop(request)
        )
    except FeedClosed:
        raise ApiError(
            503,
            "The service is shutting down; connect again (with Last-Event-ID) shortly.",
            {"Retry-After": str(settings.retry_after)},
        ) from None
    try:
        start = None
        if position is not None:
            # Before the first byte, so that a Redis that cannot answer gets a 503.
            subscriber.discard()
            replay = await store.replay(namespace, position, limit=REPLAY_PAGE, now=now_ms())
            start = (position, replay)
        response = EventSourceResponse(
            sep="\n",
            ping_interval=settings.events_heartbeat,
            send_timeout=settings.client_timeout,
        )
        try:
            await within_deadline(request, response.prepare(request))
        except ClientGone:
            return response
        await _stream(request, response, store, subscriber, start)
        return response
    finally:
        hub.unsubscribe(subscriber)


async def _stream(
    request: web.Request,
    response: EventSourceResponse,
    store: SessionStore,
    subscriber: Subscriber,
    start: tuple[str, Replay] | None,
) -> None:
    """The prepared stream: the replay after ``start``'s position (its first page read),
    if any, then live events until the subscriber ends. A stream ended by shutdown or by
    Redis says why in a comment and ends cleanly; the client resumes by Last-Event-ID."""
    # The heartbeat stops when a write to the client fails: the client has gone.
    watcher = asyncio.create_task(response.wait())
    watcher.add_done_callback(lambda _: subscriber.end(Ended.GONE))
    reason: Ended | None = None
    try:
        last = None
        if start is not None:
            last = await _replay(request, response, store, subscriber, *start)
        await _live(request, response, subscriber, last)
        reason = subscriber.ended
        if reason in (Ended.SHUTDOWN, Ended.UNAVAILABLE):
            assert reason is not None
            await send(request, response, f": {reason.value}; resume by Last-Event-ID\n\n".encode())
    except ClientGone:
        reason = Ended.GONE
    except StoreUnavailable as error:
        reason = Ended.UNAVAILABLE
        log.warning("a change feed stream ends: Redis cannot replay now (%s)", error.reason)
    except Exception:
        drop(request)
        raise
    finally:
        watcher.cancel()
        response.stop_streaming()
        await response.wait()
    if reason in (Ended.SHUTDOWN, Ended.UNAVAILABLE):
        with suppress(ClientGone):
            await within_deadline(request, response.write_eof())


async def _replay(
    request: web.Request,
    response: EventSourceResponse,
    store: SessionStore,
    subscriber: Subscriber,
    after: str,
    replay: Replay,
) -> tuple[int, int]:
    """Sends the events of ``replay`` (read after ``after``) and of the pages after it up
    to the stream's newest event; answers the position of the last one, or of the reset
    sent instead."""
    while True:
        if replay.reset:
            await send(request, response, render(reset_event(replay.newest)))
            return position_key(replay.newest)
        frames = [render(event) for event in replay.events if subscriber.wants(event)]
        if frames:
            await send(request, response, b"".join(frames))
        # Done at the newest event the page saw; a short page alone is no proof of it (a
        # page may be bounded by more than its count).
        if not replay.events or replay.events[-1].id == replay.newest:
            return position_key(replay.events[-1].id if replay.events else after)
        after = replay.events[-1].id
        subscriber.discard()
        replay = await store.replay(subscriber.namespace, after, limit=REPLAY_PAGE, now=now_ms())


async def _live(
    request: web.Request,
    response: EventSourceResponse,
    subscriber: Subscriber,
    last: tuple[int, int] | None,
) -> None:
    """Sends the queued events, skipping those at or before ``last`` (the replay sent
    them), then hands the connection to the hub, which writes every later batch to it,
    until the subscriber ends."""
    if last is not None:
        subscriber.sent_through(last)
    while batches := subscriber.queued():
        await send(request, response, b"".join(batch.frames for batch in batches))
    # Nothing is queued now and nothing can be until this returns: the hub's next batch
    # follows what the response wrote, on the same connection.
    chunked = response.headers.get(hdrs.TRANSFER_ENCODING) == "chunked"
    subscriber.go_live(request.transport, chunked=chunked)
    await subscriber.until_ended()


async def feed_context(app: web.Application) -> AsyncIterator[None]:
    """The worker's feed hub, on the app's store; its readers stop at the end."""
    app[FEED] = FeedHub(app[STORE], stall_after=app[SETTINGS].client_timeout)
    yield
    await app[FEED].aclose()


async def end_streams(app: web.Application) -> None:
    """On shutdown, before aiohttp waits for requests to finish: every stream ends after
    what it has queued, and no new one starts."""
    hub = app.get(FEED)
    if hub is not None:
        hub.end_streams()
