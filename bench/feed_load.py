"""The feed row's load (issue 20): subscribers of ``GET /api/events`` in one namespace,
and writes at a steady rate, each in a process of its own, so that neither shares the
service's core or the other's event loop.

Both speak HTTP/1.1 by hand on plain asyncio Protocols (uvloop when it is installed),
so that the load they put on the machine is little more than the kernel's: a client
library's per-request and per-read machinery would make the load generators, not the
service, what the row measures.

- ``python -m bench.feed_load subscribe ARGS``: opens the subscribers (narrowed, each
  with ``?session_id=`` of one session), prints ``ready`` once every one has its
  answer's headers, reads until a line arrives on stdin, then writes its findings (JSON)
  to the file ARGS names. The answer is chunked: each subscriber decodes the chunk
  framing (a read may end anywhere, inside a chunk's size line or inside a frame) and
  counts its events' bytes (see :class:`Stream`); every ``sample_every``-th one (every
  one, narrowed) also parses them and counts its events, and the sampled ones note, for
  each event carrying a message, the message's id and when the read completing that
  event arrived (``time.monotonic()``: CLOCK_MONOTONIC, one clock for every process of
  the machine).
- ``python -m bench.feed_load write ARGS``: single messages (``POST
  /api/sessions/{id}/messages``) at ``rate`` a second for ``seconds``, over ``sessions``
  sessions, on a fixed pool of keep-alive connections. Each is sent when it is due
  (open loop), on an idle connection, else behind another on the least busy one
  (counted). It writes each stored message's id and the time its 201 arrived, and the
  cores that it, the processes ARGS names (the service, the subscribers, Redis) and the
  whole machine used from its first write to its last answer, to the file ARGS names.

The harness (bench/live.py) joins the two: a write's latency to a subscriber is the
arrival of its event there less the arrival of its acknowledgement.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import orjson

from .load import CONTENT

EVENT_MARK = b"\nevent: "
# How a comment's line begins; the service writes each comment as a chunk of its own.
COMMENT = ord(":")
MESSAGE_ID = b'"message":{"id":"'
HEAD_END = b"\r\n\r\n"
# Subscribers connecting at once: a burst of a thousand connects would overflow the
# listening socket's backlog.
CONNECT_AT_ONCE = 100
# The writer's keep-alive connections: enough that a write waits behind another only
# when the service is far behind.
WRITER_CONNECTIONS = 256
# The writer's pause between looks at what is due (the event loop's timers tick in ms).
WRITER_TICK = 0.001
# A guard against a hang; never part of a figure.
GUARD = 60.0


@dataclass
class Stream:
    """One subscriber's reading of its events' bytes (the chunk framing and the comment
    chunks taken off). Every stream counts those bytes; a ``counted`` one also parses
    them into events and counts those, and a ``sampled`` one also notes each message's
    arrival. Scanning a gigabyte a second for events would cost this process as much as
    receiving it, so the harness checks the streams that only count bytes against the
    parsed ones instead: every whole-namespace stream carries the same events."""

    sampled: bool
    counted: bool
    events: int = 0
    event_bytes: int = 0
    received: int = 0
    # The stream ended before the reader was told to stop (the service dropped it).
    ended_early: bool = False
    arrivals: list[tuple[str, float]] = field(default_factory=list)
    # The bytes after the last whole frame.
    _rest: bytes = b""

    def take(self, chunk: bytes, now: float) -> None:
        """``chunk``, arrived at ``now``: events' bytes, cut anywhere."""
        self.received += len(chunk)
        self.content(chunk, 0, len(chunk), now)

    def content(self, data: bytes, start: int, end: int, now: float) -> None:
        """``data[start:end]``: events' bytes that arrived at ``now``."""
        self.event_bytes += end - start
        if self.counted:
            self._frames(data[start:end], now)

    def _frames(self, chunk: bytes, now: float) -> None:
        data = self._rest + chunk
        end = data.rfind(b"\n\n")
        if end < 0:
            self._rest = data
            return
        frames, self._rest = data[: end + 2], data[end + 2 :]
        # A frame is "id: …\nevent: …\ndata: …\n\n": one EVENT_MARK per event.
        self.events += frames.count(EVENT_MARK)
        if not self.sampled:
            return
        at = frames.find(MESSAGE_ID)
        while at >= 0:
            start = at + len(MESSAGE_ID)
            end = frames.index(b'"', start)
            self.arrivals.append((frames[start:end].decode(), now))
            at = frames.find(MESSAGE_ID, end)


class Subscription(asyncio.Protocol):
    """One ``GET /api/events`` on a connection of its own: its answer's head, then the
    chunked body, decoded into ``stream``."""

    def __init__(self, stream: Stream, request: bytes, stopping: Callable[[], bool]) -> None:
        self.stream = stream
        self.request = request
        self.stopping = stopping
        # Done with None once the head said 200 and chunked, else with what it said.
        self.answered: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self._head: bytes | None = b""
        # Bytes of the current chunk's data still to come, then of the CRLF after it.
        self._left = 0
        self._skip = 0
        # None of the current chunk's data has come yet; that chunk is a comment.
        self._starting = False
        self._comment = False
        # A chunk size line cut by the end of a read.
        self._line = b""
        # The last chunk has arrived, or an answer that is no stream.
        self._finished = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport's subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        stream = self.stream
        stream.received += len(data)
        now = time.monotonic() if stream.sampled else 0.0
        start = 0
        if self._head is not None:
            data = self._head + data
            end = data.find(HEAD_END)
            if end < 0:
                self._head = data
                return
            head, self._head = data[:end].lower(), None
            chunked = b"\r\ntransfer-encoding: chunked" in head
            if not head.startswith(b"http/1.1 200 ") or not chunked:
                self._settle(head.partition(b"\r\n")[0].decode())
                self._finished = True
                return
            self._settle(None)
            start = end + len(HEAD_END)
        self._chunks(data, start, now)

    def _chunks(self, data: bytes, at: int, now: float) -> None:
        end = len(data)
        while at < end and not self._finished:
            if self._left:
                stop = min(end, at + self._left)
                if self._starting:
                    self._comment = data[at] == COMMENT
                    self._starting = False
                if not self._comment:
                    self.stream.content(data, at, stop, now)
                self._left -= stop - at
                if not self._left:
                    self._skip = 2
                at = stop
            elif self._skip:
                step = min(self._skip, end - at)
                self._skip -= step
                at += step
            else:
                line_end = data.find(b"\n", at)
                if line_end < 0:
                    self._line += data[at:]
                    return
                line, self._line = self._line + data[at:line_end], b""
                at = line_end + 1
                size = int(line.partition(b";")[0].strip(), 16)
                if not size:
                    # The last chunk: the service ended the stream (what may follow it,
                    # the trailer's blank line, is no event's).
                    self._ended()
                    return
                self._left = size
                self._starting = True

    def _settle(self, failure: str | None) -> None:
        if not self.answered.done():
            self.answered.set_result(failure)

    def _ended(self) -> None:
        self._finished = True
        if not self.stopping():
            self.stream.ended_early = True
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._settle(f"connection lost: {exc!r}")
        if not self.stopping():
            self.stream.ended_early = True


def origin(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


async def subscribe(args: dict[str, Any]) -> dict[str, Any]:
    host, port = origin(args["url"])
    token, count = args["token"], args["subscribers"]
    sample_every, narrow, sessions = args["sample_every"], args["narrow"], args["sessions"]
    # Narrowed streams carry few events, and each its own: every one is parsed.
    streams = [
        Stream(sampled=n % sample_every == 0, counted=narrow or n % sample_every == 0)
        for n in range(count)
    ]
    stopping = False
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)
    subscriptions: list[Subscription] = []

    async def follow(number: int, stream: Stream) -> str | None:
        # Narrowed, subscriber n follows the one session the writer's n-th writes go to.
        query = f"?session_id=feed{number % sessions}" if narrow else ""
        request = (
            f"GET /api/events{query} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()
        async with gate:
            try:
                _, subscription = await loop.create_connection(
                    lambda: Subscription(stream, request, lambda: stopping), host, port
                )
            except OSError as error:
                return type(error).__name__
            subscriptions.append(subscription)
            return await subscription.answered

    async with asyncio.timeout(GUARD):
        outcomes = await asyncio.gather(*(follow(n, s) for n, s in enumerate(streams)))
    failures = [outcome for outcome in outcomes if outcome is not None]
    print("ready" if not failures else f"failed {failures[:3]}", flush=True)
    await loop.run_in_executor(None, sys.stdin.readline)
    stopping = True
    for subscription in subscriptions:
        if subscription.transport is not None:
            subscription.transport.abort()
    return {
        "subscribers": count,
        "connected": count - len(failures),
        "failures": failures[:10],
        "ended_early": sum(s.ended_early for s in streams),
        "events": [s.events for s in streams if s.counted],
        "event_bytes": [s.event_bytes for s in streams],
        "bytes": sum(s.received for s in streams),
        "arrivals": [s.arrivals for s in streams if s.sampled],
        "sampled_numbers": [n for n, s in enumerate(streams) if s.sampled],
    }


def message_body(message_id: str) -> bytes:
    return orjson.dumps({"role": "user", "content": CONTENT, "channel": "web", "id": message_id})


class Poster(asyncio.Protocol):
    """One keep-alive connection of the writer: requests go out whenever they are due,
    answers come back in the order of the requests."""

    def __init__(self, answered: Callable[[Poster, str, int, float], None]) -> None:
        self.answered = answered
        self.transport: asyncio.Transport | None = None
        # Message ids of the requests sent whose answers have not arrived.
        self.waiting: deque[str] = deque()
        self._buffer = b""
        # Body bytes of the current answer still to come; -1 while its head is.
        self._body = -1
        self._status = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def send(self, message_id: str, request: bytes) -> None:
        assert self.transport is not None
        self.waiting.append(message_id)
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        data = self._buffer + data if self._buffer else data
        at = 0
        while True:
            if self._body < 0:
                end = data.find(HEAD_END, at)
                if end < 0:
                    break
                head = data[at:end].lower()
                self._status = int(head[9:12])
                length = head.find(b"\r\ncontent-length:")
                if length < 0:
                    raise RuntimeError(f"an answer without Content-Length: {head!r}")
                value_end = head.find(b"\r\n", length + 2)
                self._body = int(head[length + 17 : value_end if value_end >= 0 else None])
                at = end + len(HEAD_END)
            if len(data) - at < self._body:
                break
            at += self._body
            self._body = -1
            self.answered(self, self.waiting.popleft(), self._status, now)
        self._buffer = data[at:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        while self.waiting:
            self.answered(self, self.waiting.popleft(), 0, time.monotonic())


def host_busy_seconds() -> float:
    """CPU time every core of the machine has spent on anything but idling so far."""
    with open("/proc/stat") as stat:
        ticks = [int(field) for field in stat.readline().split()[1:]]
    # The fourth and fifth fields are idle and waiting for I/O.
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | str) -> float:
    """CPU time process ``pid`` has used so far, user and system (from /proc)."""
    with open(f"/proc/{pid}/stat") as stat:
        # The fields after the command name, which is in parentheses.
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def write(args: dict[str, Any]) -> dict[str, Any]:
    host, port = origin(args["url"])
    token, rate, seconds = args["token"], args["rate"], args["seconds"]
    sessions, label = args["sessions"], args["label"]
    watched: dict[str, int] = {**args.get("pids", {}), "writer": os.getpid()}
    head = (
        f"POST /api/sessions/feed%d/messages HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        "Content-Length: %d\r\n\r\n"
    ).encode()
    acks: dict[str, float] = {}
    late: list[float] = []
    statuses: dict[int, int] = {}
    total = round(rate * seconds)
    loop = asyncio.get_running_loop()
    idle: deque[Poster] = deque()
    all_answered = loop.create_future()
    answers = 0

    def answered(poster: Poster, message_id: str, status: int, at: float) -> None:
        nonlocal answers
        if status == 201:
            acks[message_id] = at
        statuses[status] = statuses.get(status, 0) + 1
        if not poster.waiting and poster.transport is not None:
            idle.append(poster)
        answers += 1
        if answers == total and not all_answered.done():
            all_answered.set_result(None)

    posters: list[Poster] = []
    for _ in range(WRITER_CONNECTIONS):
        _, poster = await loop.create_connection(lambda: Poster(answered), host, port)
        posters.append(poster)
    idle.extend(posters)
    behind = 0
    cpu_before = {name: cpu_seconds(pid) for name, pid in watched.items()}
    host_before = host_busy_seconds()
    began = time.monotonic()
    first = loop.time()
    number = 0
    while number < total:
        now = loop.time()
        due_now = min(total, int((now - first) * rate) + 1)
        while number < due_now:
            message_id = f"{label}-{number}"
            body = message_body(message_id)
            while idle and idle[0].transport is None:
                idle.popleft()
            if idle:
                poster = idle.popleft()
            else:
                behind += 1
                poster = min(
                    (p for p in posters if p.transport is not None), key=lambda p: len(p.waiting)
                )
            late.append(loop.time() - (first + number / rate))
            poster.send(message_id, head % (number % sessions, len(body)) + body)
            number += 1
        # A fixed tick: a shorter sleep than the timers' resolution would spin.
        await asyncio.sleep(WRITER_TICK)
    async with asyncio.timeout(GUARD):
        await all_answered
    elapsed = time.monotonic() - began
    cores = {name: (cpu_seconds(pid) - cpu_before[name]) / elapsed for name, pid in watched.items()}
    # Every process of the machine: what the others used is this less the ones watched.
    cores["host"] = (host_busy_seconds() - host_before) / elapsed
    for poster in posters:
        if poster.transport is not None:
            poster.transport.close()
    late.sort()
    return {
        "acks": acks,
        "statuses": {str(k): v for k, v in statuses.items()},
        "elapsed": elapsed,
        "late_p99_ms": late[int(len(late) * 0.99) - 1] * 1000 if late else 0.0,
        "sent_behind_another": behind,
        "cores": cores,
    }


def main() -> None:
    role, args = sys.argv[1], orjson.loads(sys.argv[2])
    try:
        import uvloop
    except ImportError:
        runner = asyncio.run
    else:
        runner = uvloop.run
    findings = runner(subscribe(args) if role == "subscribe" else write(args))
    Path(args["out"]).write_bytes(orjson.dumps(findings))


if __name__ == "__main__":
    main()
