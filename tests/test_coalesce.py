"""Overlapping equal list reads share a round trip, never one sent before they arrived."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from service.coalesce import Coalescer
from service.models import MessageIn
from service.store import SessionStore

from conftest import ACTIVE_WINDOW_MS
from redis_process import RedisProcess


class GatedReads:
    """A read per call, recorded with its key and time, each held until released."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.gates: list[asyncio.Future[str]] = []

    async def __call__(self, key: str, now: int) -> str:
        self.calls.append((key, now))
        gate: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.gates.append(gate)
        return await gate

    def release(self, n: int, value: str | BaseException) -> None:
        if isinstance(value, BaseException):
            self.gates[n].set_exception(value)
        else:
            self.gates[n].set_result(value)


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_lone_read_goes_at_once_with_its_own_time() -> None:
    reads = GatedReads()
    coalescer = Coalescer(reads)
    task = asyncio.ensure_future(coalescer.read("page", 100))
    await settle()
    assert reads.calls == [("page", 100)]
    reads.release(0, "first")
    assert await task == "first"
    assert coalescer.waiting("page") == 0


async def test_reads_arriving_in_flight_share_the_next_round_trip_only() -> None:
    reads = GatedReads()
    coalescer = Coalescer(reads)
    first = asyncio.ensure_future(coalescer.read("page", 100))
    await settle()
    later = [asyncio.ensure_future(coalescer.read("page", now)) for now in (105, 120, 110)]
    other = asyncio.ensure_future(coalescer.read("other", 107))
    await settle()
    # The in-flight read left before they came: they wait; another key goes at once.
    assert reads.calls == [("page", 100), ("other", 107)]
    assert coalescer.waiting("page") == 3
    reads.release(0, "before them")
    assert await first == "before them"
    await settle()
    # One round trip for the three, as of the latest of their times.
    assert reads.calls[2:] == [("page", 120)]
    reads.release(2, "after them")
    assert await asyncio.gather(*later) == ["after them"] * 3
    reads.release(1, "other")
    assert await other == "other"
    assert coalescer.waiting("page") == 0 and coalescer.waiting("other") == 0


async def test_a_failure_reaches_its_riders_and_the_next_ones_read_again() -> None:
    reads = GatedReads()
    coalescer = Coalescer(reads)
    first = asyncio.ensure_future(coalescer.read("page", 1))
    await settle()
    riders = [asyncio.ensure_future(coalescer.read("page", 2)) for _ in range(2)]
    reads.release(0, "ok")
    await settle()
    late = asyncio.ensure_future(coalescer.read("page", 3))
    await settle()
    reads.release(1, ConnectionError("redis went away"))
    for rider in riders:
        with pytest.raises(ConnectionError):
            await rider
    await settle()
    assert reads.calls == [("page", 1), ("page", 2), ("page", 3)]
    reads.release(2, "back")
    assert await first == "ok" and await late == "back"


async def test_a_first_read_that_goes_away_leaves_the_waiting_their_round_trip() -> None:
    reads = GatedReads()
    coalescer = Coalescer(reads)
    first = asyncio.ensure_future(coalescer.read("page", 1))
    await settle()
    riders = [asyncio.ensure_future(coalescer.read("page", now)) for now in (2, 3)]
    await settle()
    # The first read's request goes away while its round trip is in the air.
    first.cancel()
    await settle()
    assert first.cancelled()
    assert reads.calls == [("page", 1), ("page", 3)]
    reads.release(1, "three")
    assert await asyncio.gather(*riders) == ["three", "three"]
    assert coalescer.waiting("page") == 0


async def test_a_waiting_read_that_goes_away_takes_nothing_from_the_others() -> None:
    reads = GatedReads()
    coalescer = Coalescer(reads)
    first = asyncio.ensure_future(coalescer.read("page", 1))
    await settle()
    gone = asyncio.ensure_future(coalescer.read("page", 2))
    behind = asyncio.ensure_future(coalescer.read("page", 3))
    await settle()
    gone.cancel()
    reads.release(0, "one")
    await settle()
    assert gone.cancelled()
    assert reads.calls[1:] == [("page", 3)]
    reads.release(1, "three")
    assert await behind == "three" and await first == "one"
    assert coalescer.waiting("page") == 0


async def test_no_round_trip_is_made_when_every_waiting_read_went_away() -> None:
    reads = GatedReads()
    coalescer = Coalescer(reads)
    first = asyncio.ensure_future(coalescer.read("page", 1))
    await settle()
    gone = [asyncio.ensure_future(coalescer.read("page", 2)) for _ in range(3)]
    await settle()
    for read in gone:
        read.cancel()
    reads.release(0, "one")
    assert await first == "one"
    await settle()
    assert reads.calls == [("page", 1)]
    # The key is quiet again: the next read goes at once.
    again = asyncio.ensure_future(coalescer.read("page", 4))
    await settle()
    assert reads.calls[1:] == [("page", 4)]
    reads.release(1, "four")
    assert await again == "four"


async def test_a_read_asked_for_and_never_awaited_holds_nobody_up() -> None:
    reads = GatedReads()
    coalescer = Coalescer(reads)
    forgotten = coalescer.read("page", 1)
    assert asyncio.iscoroutine(forgotten)
    forgotten.close()
    read = asyncio.ensure_future(coalescer.read("page", 2))
    await settle()
    assert reads.calls == [("page", 2)]
    reads.release(0, "two")
    assert await read == "two"


async def test_two_first_reads_asked_for_at_once_share_one_round_trip() -> None:
    reads = GatedReads()
    coalescer = Coalescer(reads)
    # Both are asked for before either runs: the second finds the first's flight.
    first, second = coalescer.read("page", 1), coalescer.read("page", 2)
    both = asyncio.gather(first, second)
    await settle()
    assert reads.calls == [("page", 1)]
    reads.release(0, "one")
    await settle()
    assert reads.calls[1:] == [("page", 2)]
    reads.release(1, "two")
    assert list(await both) == ["one", "two"]


class HeldReplies:
    """A TCP relay to Redis that can hold Redis's replies back while commands go through."""

    def __init__(self, redis_port: int) -> None:
        self.redis_port = redis_port
        self.open = asyncio.Event()
        self.open.set()
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _relay(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        redis_in, redis_out = await asyncio.open_connection("127.0.0.1", self.redis_port)

        async def pump(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, gated: bool
        ) -> None:
            while data := await source.read(65536):
                if gated:
                    await self.open.wait()
                sink.write(data)
                await sink.drain()
            sink.close()

        for task in (
            asyncio.create_task(pump(client_in, redis_out, False)),
            asyncio.create_task(pump(redis_in, client_out, True)),
        ):
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


@pytest.fixture
async def held(redis_server: RedisProcess) -> AsyncIterator[HeldReplies]:
    relay = HeldReplies(redis_server.port)
    await relay.start()
    yield relay
    relay.open.set()
    await relay.close()


def message(n: int) -> MessageIn:
    return MessageIn(
        id=f"m{n}", role="user", content=f"hello {n}", channel="web",
        timestamp_ms=1_700_000_000_000 + n, metadata=None,
    )  # fmt: skip


async def sort_calls(client: Redis) -> int:
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_sort", {}).get("calls", 0))


@pytest.mark.real
async def test_a_write_done_before_a_read_began_is_in_its_page(
    redis_server: RedisProcess, held: HeldReplies
) -> None:
    direct = Redis.from_url(redis_server.url)
    await direct.flushall()
    writer = SessionStore(direct, active_window_ms=ACTIVE_WINDOW_MS)
    relay_port = held.server.sockets[0].getsockname()[1] if held.server else 0
    relayed = Redis(host="127.0.0.1", port=relay_port)
    reader = SessionStore(relayed, active_window_ms=ACTIVE_WINDOW_MS)
    now = 1_700_000_000_100
    try:
        await writer.add_message("default", "chat", message(1), now=now)
        await reader.list_sessions("default", limit=50, now=now)  # connects and loads
        await direct.config_resetstat()
        held.open.clear()
        in_flight = asyncio.ensure_future(reader.list_sessions("default", limit=50, now=now))
        for _ in range(5000):
            if await sort_calls(direct) >= 1:
                break
            await asyncio.sleep(0.001)
        assert await sort_calls(direct) == 1, "the first read never reached Redis"
        # Redis has answered the first read (the relay holds the answer back); now a
        # second message is stored, and then equal reads begin.
        await writer.add_message("default", "chat", message(2), now=now)
        later = [
            asyncio.ensure_future(reader.list_sessions("default", limit=50, now=now + n))
            for n in range(1, 6)
        ]
        await settle()
        held.open.set()
        before = await in_flight
        after = await asyncio.gather(*later)
        assert b'"message_count":1' in before.items_json
        for page in after:
            assert b'"message_count":2' in page.items_json
            assert page.items_json == after[0].items_json
        assert await sort_calls(direct) == 2
    finally:
        await reader.aclose()
        await writer.aclose()
        await relayed.aclose()
        await direct.aclose()
