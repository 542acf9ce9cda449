"""The change feed's hub (SPEC §6): in each worker, one blocking read of a namespace's
event stream at a time, however many subscribers it has, fanned out in the process.

What it keeps:

- A subscriber gets, in stream order, every event after the namespace reader's position
  at the moment :meth:`FeedHub.subscribe` returned, narrowed by its channel and session
  id. That position is at or before the newest event of any read of the stream made
  after ``subscribe`` returned, so a replay read then, followed by these events, leaves
  no gap (:meth:`Subscriber.sent_through` drops the overlap).
- Until its handler has sent the replay, a subscriber's events wait in a queue bounded
  by ``max_events`` and ``max_bytes`` (beyond one batch). Then the handler hands it the
  connection (:meth:`Subscriber.go_live`) and the reader writes each batch to it
  itself: no task per subscriber wakes for a batch. What the connection holds unsent
  is bounded the same way: past ``max_bytes`` (beyond one batch), or with none of it
  taken for ``stall_after`` while there is more to write, the client is behind. One
  that falls behind is ended and its ``on_behind`` called (the handler drops its
  connection), never buffered more. It resumes by its last event id.
- An event's frame (its Server-Sent Events lines) is rendered once and each batch's
  frames joined once, and framed once as a chunk of a chunked body, for every
  subscriber: an unfiltered subscriber costs one write per batch. aiohttp-sse's
  ``EventSourceResponse.send()`` would format every event again for every subscriber
  and write it alone, a cost that grows with subscribers times events (the commit that
  made this module has the measurement); the response stays aiohttp-sse's, which keeps
  the headers and the heartbeat comments. A narrowed subscriber takes its events from
  the batch's events grouped once by session or channel.
- After a batch that did not fill a read, the reader waits ``gather`` seconds before
  its next read, so that what is written meanwhile comes as one batch: a batch costs
  each subscriber a write, whatever its size.
- A namespace's reader ends once it has no subscriber, at the end of its current
  blocking read (at most ``block_ms``). A Redis that cannot serve it is tried again
  after each of ``retry_delays``; when they are spent every subscriber of the
  namespace is ended (each resumes later by its last event id), so that a client is
  never left on a stream that silently stopped.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .models import now_ms
from .store import SessionStore, StoreUnavailable
from .store.events import FIRST, ChangeEvent
from .tasks import stopped

log = logging.getLogger("chatsessions")

# A blocking read waits this long at most, so an idle reader notices within it that its
# last subscriber left (the store clamps it below a round trip's deadline).
BLOCK_MS = 1_000
# Events per read: a batch every subscriber's queue takes whole.
READ_COUNT = 200
# What one subscriber may have waiting: a client this far behind is dropped.
QUEUE_EVENTS = 1_000
QUEUE_BYTES = 1 << 20
# Seconds a live connection's write buffer may go without shrinking while there is more
# to write (the app passes client_timeout).
STALL_AFTER = 15.0
# Seconds the reader waits after a batch (that did not fill its read) before its next
# read: under a steady flow of events, fewer and larger batches, each costing every
# subscriber one write, at the price of this much delay for some events.
GATHER = 0.01
# Pauses before each new try of a read that Redis could not serve; then streams end.
RETRY_DELAYS = (0.1, 0.2, 0.4, 0.8, 1.6)


class Ended(enum.Enum):
    """Why a subscriber gets no more events."""

    SHUTDOWN = "the service is shutting down"
    BEHIND = "the client fell too far behind"
    UNAVAILABLE = "Redis cannot serve the feed now"
    GONE = "the client has gone"


class FeedClosed(Exception):
    """The hub takes no new subscriber: the service is shutting down."""


def position_key(event_id: str) -> tuple[int, int]:
    """An event id (``ms-seq``, as the stream gives it) in the stream's order."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq)


def render(event: ChangeEvent) -> bytes:
    """The event's Server-Sent Events lines. Its data is one line of JSON; should it ever
    hold a line break, each line goes in a data field of its own, as the format asks."""
    data = event.data
    if b"\n" in data or b"\r" in data:
        data = b"\ndata: ".join(data.splitlines())
    return b"id: %b\nevent: %b\ndata: %b\n\n" % (event.id.encode(), event.type.encode(), data)


@dataclass(frozen=True, slots=True)
class LiveEvent:
    event: ChangeEvent
    key: tuple[int, int]
    frame: bytes

    @classmethod
    def of(cls, event: ChangeEvent) -> LiveEvent:
        return cls(event, position_key(event.id), render(event))


class Batch:
    """Events read together (one at least: an empty chunk would end a chunked body), in
    stream order, and their frames joined; the same frames as one chunk of a chunked
    answer, and the events by session and by channel, each made once for every
    subscriber that asks."""

    __slots__ = ("_by_channel", "_by_session", "_chunk", "events", "frames")

    def __init__(self, events: Sequence[LiveEvent]) -> None:
        self.events = events
        self.frames = b"".join(event.frame for event in events)
        self._chunk: bytes | None = None
        self._by_session: dict[str, list[LiveEvent]] | None = None
        self._by_channel: dict[str, list[LiveEvent]] | None = None

    @property
    def chunk(self) -> bytes:
        """The frames framed as one chunk of a ``Transfer-Encoding: chunked`` body."""
        if self._chunk is None:
            self._chunk = b"%x\r\n%b\r\n" % (len(self.frames), self.frames)
        return self._chunk

    def after(self, key: tuple[int, int]) -> Batch | None:
        """The events after position ``key``; None for none."""
        if self.events[-1].key <= key:
            return None
        if self.events[0].key > key:
            return self
        return Batch([event for event in self.events if event.key > key])

    def narrowed(self, channel: str | None, session_id: str | None) -> Batch | None:
        """The events of ``session_id`` and ``channel`` (each when given); None for none."""
        if session_id is not None:
            if self._by_session is None:
                self._by_session = _grouped(self.events, lambda event: event.session_id)
            events = self._by_session.get(session_id, [])
            if channel is not None:
                events = [live for live in events if live.event.channel == channel]
        elif channel is not None:
            if self._by_channel is None:
                self._by_channel = _grouped(self.events, lambda event: event.channel)
            events = self._by_channel.get(channel, [])
        else:
            return self
        if not events:
            return None
        return self if len(events) == len(self.events) else Batch(events)


def _grouped(
    events: Sequence[LiveEvent], by: Callable[[ChangeEvent], str]
) -> dict[str, list[LiveEvent]]:
    groups: dict[str, list[LiveEvent]] = {}
    for live in events:
        groups.setdefault(by(live.event), []).append(live)
    return groups


class Subscriber:
    """One stream's events: queued by its namespace's reader until the handler has sent
    the replay and the queue, then written by the reader straight to the connection."""

    def __init__(
        self,
        feed: _Feed,
        *,
        channel: str | None,
        session_id: str | None,
        max_events: int,
        max_bytes: int,
        stall_after: float,
        on_behind: Callable[[], object] | None,
    ) -> None:
        self.namespace = feed.namespace
        self.channel = channel
        self.session_id = session_id
        self.ended: Ended | None = None
        self._feed = feed
        self._filtered = channel is not None or session_id is not None
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._stall_after = stall_after
        self._on_behind = on_behind
        self._loop = asyncio.get_running_loop()
        self._pending: deque[Batch] = deque()
        self._events = 0
        self._bytes = 0
        # Set when the subscriber ends, and while queued when a batch arrives.
        self._wake = asyncio.Event()
        # Events at or before this position were sent by the replay.
        self._sent_through: tuple[int, int] | None = None
        # Once live: the connection, whether its body is chunked, what its write buffer
        # held after the last write, and when the client was last seen taking from it.
        self._transport: asyncio.Transport | None = None
        self._chunked = True
        self._held = 0
        self._reading_at = 0.0

    @property
    def buffered(self) -> int:
        """Bytes held in the process for this client: its queue's frames, or once live,
        its connection's write buffer."""
        if self._transport is not None:
            return self._transport.get_write_buffer_size()
        return self._bytes

    def wants(self, event: ChangeEvent) -> bool:
        return (self.channel is None or event.channel == self.channel) and (
            self.session_id is None or event.session_id == self.session_id
        )

    def offer(self, batch: Batch) -> bool:
        """Queue or write ``batch`` (what of it this subscriber wants); False when that
        would take what it holds past its bounds, or its client is gone: then the
        subscriber is ended."""
        if self.ended is not None:
            return True
        if self._sent_through is not None:
            later = batch.after(self._sent_through)
            if later is None:
                return True
            # Events come in stream order: every later one is after it too.
            self._sent_through = None
            batch = later
        if self._filtered:
            narrowed = batch.narrowed(self.channel, self.session_id)
            if narrowed is None:
                return True
            batch = narrowed
        if self._transport is not None:
            return self._write(batch)
        events, size = len(batch.events), len(batch.frames)
        # One batch is always taken, however large: a single large event never ends a
        # subscriber that keeps up.
        if self._pending and (
            self._events + events > self._max_events or self._bytes + size > self._max_bytes
        ):
            self._behind()
            return False
        self._pending.append(batch)
        self._events += events
        self._bytes += size
        self._wake.set()
        return True

    def _write(self, batch: Batch) -> bool:
        """Writes ``batch`` to the live connection. What the connection still holds is
        bounded like a queue: past ``max_bytes``, or with nothing of it taken for
        ``stall_after`` while there is more to write, the client is behind."""
        transport = self._transport
        assert transport is not None
        if transport.is_closing():
            self.end(Ended.GONE)
            return False
        data = batch.chunk if self._chunked else batch.frames
        held = transport.get_write_buffer_size()
        now = self._loop.time()
        if held < self._held or not held:
            # The client took some of what the last write left: it is reading.
            self._reading_at = now
        if held and (
            held + len(data) > self._max_bytes or now - self._reading_at > self._stall_after
        ):
            self._behind()
            return False
        transport.write(data)
        self._held = transport.get_write_buffer_size()
        return True

    def _behind(self) -> None:
        self.discard()
        self.end(Ended.BEHIND)
        if self._on_behind is not None:
            self._on_behind()

    def discard(self) -> None:
        """Forget every queued event (a replay is about to read them from Redis)."""
        self._pending.clear()
        self._events = self._bytes = 0

    def sent_through(self, key: tuple[int, int]) -> None:
        """The replay sent every event up to position ``key``: none of them is sent again."""
        kept = [after for batch in self._pending if (after := batch.after(key)) is not None]
        self.discard()
        for batch in kept:
            self._pending.append(batch)
            self._events += len(batch.events)
            self._bytes += len(batch.frames)
        if not kept:
            self._sent_through = key

    def queued(self) -> list[Batch]:
        """Every queued batch (what is left after the subscriber ended too), taken."""
        batches = list(self._pending)
        self.discard()
        return batches

    def go_live(self, transport: asyncio.Transport | None, *, chunked: bool) -> None:
        """From now on every batch is written straight to ``transport`` (the stream's
        connection, its body chunked or not). Its queue must be empty: what it held
        goes first, through the response."""
        assert not self._pending
        if self.ended is not None:
            return
        if transport is None or transport.is_closing():
            self.end(Ended.GONE)
            return
        self._transport = transport
        self._chunked = chunked
        self._reading_at = self._loop.time()

    async def until_ended(self) -> Ended:
        while self.ended is None:
            self._wake.clear()
            await self._wake.wait()
        return self.ended

    def end(self, reason: Ended) -> None:
        if self.ended is None:
            self.ended = reason
            self._transport = None
            self._wake.set()


def _ready_future() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


@dataclass(eq=False)
class _Feed:
    """A namespace's reader and its subscribers."""

    namespace: str
    subscribers: set[Subscriber] = field(default_factory=set)
    # Done once the reader knows the position it goes on from (or could not learn it).
    ready: asyncio.Future[None] = field(default_factory=_ready_future)
    task: asyncio.Task[None] | None = None


class FeedHub:
    """The worker's readers of namespaces' event streams and their subscribers."""

    def __init__(
        self,
        store: SessionStore,
        *,
        block_ms: int = BLOCK_MS,
        read_count: int = READ_COUNT,
        max_events: int = QUEUE_EVENTS,
        max_bytes: int = QUEUE_BYTES,
        stall_after: float = STALL_AFTER,
        gather: float = GATHER,
        retry_delays: Sequence[float] = RETRY_DELAYS,
    ) -> None:
        self._store = store
        self._block_ms = block_ms
        self._read_count = read_count
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._stall_after = stall_after
        self._gather = gather
        self._retry_delays = tuple(retry_delays)
        self._feeds: dict[str, _Feed] = {}
        self._closing = False

    def readers(self) -> dict[str, int]:
        """The namespaces with a reader running, and how many subscribers each has."""
        return {name: len(feed.subscribers) for name, feed in self._feeds.items()}

    def subscribers(self, namespace: str) -> tuple[Subscriber, ...]:
        """The subscribers of ``namespace`` now."""
        feed = self._feeds.get(namespace)
        return () if feed is None else tuple(feed.subscribers)

    async def subscribe(
        self,
        namespace: str,
        *,
        channel: str | None = None,
        session_id: str | None = None,
        on_behind: Callable[[], object] | None = None,
    ) -> Subscriber:
        """A new subscriber of ``namespace``; it gets events once this returns (see the
        module's docstring). StoreUnavailable when the reader could not start; FeedClosed
        once the hub is shutting down. Pair with :meth:`unsubscribe`."""
        if self._closing:
            raise FeedClosed()
        feed = self._feeds.get(namespace)
        if feed is None:
            feed = self._feeds[namespace] = _Feed(namespace)
            feed.task = asyncio.create_task(self._run(feed), name=f"feed reader {namespace}")
        subscriber = Subscriber(
            feed,
            channel=channel,
            session_id=session_id,
            max_events=self._max_events,
            max_bytes=self._max_bytes,
            stall_after=self._stall_after,
            on_behind=on_behind,
        )
        feed.subscribers.add(subscriber)
        try:
            # Shielded: one waiting request that is cancelled must not cancel the others'.
            await asyncio.shield(feed.ready)
        except BaseException:
            feed.subscribers.discard(subscriber)
            raise
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        subscriber._feed.subscribers.discard(subscriber)
        subscriber.end(Ended.GONE)

    def end_streams(self) -> None:
        """End every subscriber and take no new one (the service is shutting down)."""
        self._closing = True
        for feed in self._feeds.values():
            for subscriber in feed.subscribers:
                subscriber.end(Ended.SHUTDOWN)

    async def aclose(self) -> None:
        """End every subscriber and stop every reader."""
        self.end_streams()
        await stopped(*[feed.task for feed in self._feeds.values() if feed.task is not None])

    async def _run(self, feed: _Feed) -> None:
        try:
            await self._follow(feed)
        except Exception as error:
            log.exception("the change feed of namespace %s stopped", feed.namespace)
            if not feed.ready.done():
                feed.ready.set_exception(error)
            self._end_all(feed, Ended.UNAVAILABLE)
        finally:
            if not feed.ready.done():
                feed.ready.set_exception(FeedClosed())
            if self._feeds.get(feed.namespace) is feed:
                del self._feeds[feed.namespace]

    async def _follow(self, feed: _Feed) -> None:
        """Learn the stream's newest event, then read after it while anyone listens."""
        namespace = feed.namespace
        try:
            start = await self._store.replay(namespace, FIRST, limit=1, now=now_ms())
        except StoreUnavailable as error:
            feed.ready.set_exception(error)
            return
        position = start.newest
        feed.ready.set_result(None)
        failures = 0
        while feed.subscribers:
            try:
                events = await self._store.wait_events(
                    namespace,
                    position,
                    block_ms=self._block_ms,
                    limit=self._read_count,
                    now=now_ms(),
                )
            except StoreUnavailable as error:
                if failures == len(self._retry_delays):
                    log.warning(
                        "the change feed of namespace %s ends its streams (they resume by "
                        "Last-Event-ID): %s",
                        namespace,
                        error.reason,
                    )
                    self._end_all(feed, Ended.UNAVAILABLE)
                    return
                await asyncio.sleep(self._retry_delays[failures])
                failures += 1
                continue
            failures = 0
            if events:
                position = events[-1].id
                self._deliver(feed, Batch([LiveEvent.of(event) for event in events]))
                if self._gather and len(events) < self._read_count:
                    # What is written meanwhile waits for the next read: a batch's cost
                    # is mostly per subscriber, so fewer, larger batches cost less. A
                    # full read means more is waiting already: read it at once.
                    await asyncio.sleep(self._gather)

    @staticmethod
    def _deliver(feed: _Feed, batch: Batch) -> None:
        # A copy: a subscriber that falls behind leaves the set on the way.
        for subscriber in tuple(feed.subscribers):
            if not subscriber.offer(batch):
                feed.subscribers.discard(subscriber)

    @staticmethod
    def _end_all(feed: _Feed, reason: Ended) -> None:
        for subscriber in feed.subscribers:
            subscriber.end(reason)
        feed.subscribers.clear()
