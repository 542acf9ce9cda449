"""The feed row's load (issue 20): subscribers of ``GET /api/events`` in one namespace,
and writes at a steady rate, each in a process of its own, so that neither shares the
service's core or the other's event loop.

- ``python -m bench.feed_load subscribe ARGS``: opens the subscribers (aiohttp client
  streams; narrowed, each with ``?session_id=`` of one session), prints ``ready`` once
  every one has its answer's headers, reads until a line arrives on stdin, then writes
  its findings (JSON) to the file ARGS names. Every
  subscriber reads all it is sent and counts its events; every ``sample_every``-th one
  also notes, for each event carrying a message, the message's id and when the chunk
  holding it arrived (``time.monotonic()``: CLOCK_MONOTONIC, one clock for every
  process of the machine).
- ``python -m bench.feed_load write ARGS``: single messages (``POST
  /api/sessions/{id}/messages``) at ``rate`` a second for ``seconds``, each sent when it
  is due whether or not the ones before it were answered, over ``sessions`` sessions;
  it writes each stored message's id and the time its 201 arrived to the file ARGS names.

The harness (bench/live.py) joins the two: a write's latency to a subscriber is the
arrival of its event there less the arrival of its acknowledgement.
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from .load import CONTENT

EVENT_MARK = b"\nevent: "
MESSAGE_ID = b'"message":{"id":"'
# Subscribers connecting at once: a burst of a thousand connects would overflow the
# listening socket's backlog.
CONNECT_AT_ONCE = 100
# A guard against a hang; never part of a figure.
GUARD = 60.0


@dataclass
class Stream:
    """One subscriber's reading."""

    sampled: bool
    events: int = 0
    received: int = 0
    # The stream ended before the reader was told to stop (the service dropped it).
    ended_early: bool = False
    arrivals: list[tuple[str, float]] = field(default_factory=list)
    _rest: bytes = b""

    def take(self, chunk: bytes, now: float) -> None:
        self.received += len(chunk)
        # A frame is "id: …\nevent: …\ndata: …\n\n": one EVENT_MARK per event.
        data = self._rest + chunk
        end = data.rfind(b"\n\n")
        if end < 0:
            self._rest = data
            return
        frames, self._rest = data[: end + 2], data[end + 2 :]
        self.events += frames.count(EVENT_MARK)
        if not self.sampled:
            return
        at = frames.find(MESSAGE_ID)
        while at >= 0:
            start = at + len(MESSAGE_ID)
            end = frames.index(b'"', start)
            self.arrivals.append((frames[start:end].decode(), now))
            at = frames.find(MESSAGE_ID, end)


async def subscribe(args: dict[str, Any]) -> dict[str, Any]:
    url, token, count = args["url"], args["token"], args["subscribers"]
    sample_every, narrow, sessions = args["sample_every"], args["narrow"], args["sessions"]
    streams = [Stream(sampled=n % sample_every == 0) for n in range(count)]
    stop = asyncio.Event()
    headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
    connected = 0
    all_connected = asyncio.Event()
    failures: list[str] = []
    gate = asyncio.Semaphore(CONNECT_AT_ONCE)

    async def follow(session: aiohttp.ClientSession, number: int, stream: Stream) -> None:
        nonlocal connected
        # Narrowed, subscriber n follows the one session the writer's n-th writes go to.
        query = f"?session_id=feed{number % sessions}" if narrow else ""
        try:
            async with gate:
                response = await session.get(url + "/api/events" + query, headers=headers)
            async with response:
                if response.status != 200:
                    failures.append(f"status {response.status}")
                    return
                connected += 1
                if connected == count:
                    all_connected.set()
                loop_time = time.monotonic
                while not stop.is_set():
                    chunk = await response.content.readany()
                    if not chunk:
                        stream.ended_early = not stop.is_set()
                        return
                    stream.take(chunk, loop_time())
        except (aiohttp.ClientError, OSError) as error:
            if not stop.is_set():
                stream.ended_early = True
                failures.append(type(error).__name__)
        finally:
            if connected < count and failures:
                all_connected.set()

    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [
            asyncio.create_task(follow(session, number, stream))
            for number, stream in enumerate(streams)
        ]
        async with asyncio.timeout(GUARD):
            await all_connected.wait()
        print("ready" if connected == count else f"failed {failures[:3]}", flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, sys.stdin.readline)
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    findings = {
        "subscribers": count,
        "connected": connected,
        "failures": failures,
        "ended_early": sum(s.ended_early for s in streams),
        "events": [s.events for s in streams],
        "bytes": sum(s.received for s in streams),
        "arrivals": [s.arrivals for s in streams if s.sampled],
        "sampled_numbers": [n for n, s in enumerate(streams) if s.sampled],
    }
    return findings


def message_body(message_id: str) -> bytes:
    return orjson.dumps({"role": "user", "content": CONTENT, "channel": "web", "id": message_id})


async def write(args: dict[str, Any]) -> dict[str, Any]:
    url, token, rate, seconds = args["url"], args["token"], args["rate"], args["seconds"]
    sessions, label = args["sessions"], args["label"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    acks: dict[str, float] = {}
    late: list[float] = []
    statuses: dict[int, int] = {}
    loop = asyncio.get_running_loop()

    async def one(session: aiohttp.ClientSession, number: int, due: float) -> None:
        message_id = f"{label}-{number}"
        late.append(loop.time() - due)
        try:
            async with session.post(
                f"{url}/api/sessions/feed{number % sessions}/messages",
                data=message_body(message_id),
                headers=headers,
            ) as response:
                await response.read()
                status = response.status
        except (aiohttp.ClientError, OSError):
            status = 0
        if status == 201:
            acks[message_id] = time.monotonic()
        statuses[status] = statuses.get(status, 0) + 1

    connector = aiohttp.TCPConnector(limit=256)
    async with aiohttp.ClientSession(connector=connector) as session:
        first = loop.time()
        sent: list[asyncio.Task[None]] = []
        for number in range(round(rate * seconds)):
            due = first + number / rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            sent.append(asyncio.create_task(one(session, number, due)))
        async with asyncio.timeout(GUARD):
            await asyncio.gather(*sent)
        elapsed = loop.time() - first
    late.sort()
    findings = {
        "acks": acks,
        "statuses": {str(k): v for k, v in statuses.items()},
        "elapsed": elapsed,
        "late_p99_ms": late[int(len(late) * 0.99) - 1] * 1000 if late else 0.0,
    }
    return findings


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
