"""python -m bench [--quick] [--sizes 1000,100000,1000000] [--seconds 9]
python -m bench flood [--rounds 3] [--seconds 5] (see bench/flood.py)
python -m bench transfer [--sessions 200] [--messages 500] (see bench/transfer.py)
python -m bench live [--sizes 1000,1000000] [--seconds 9] (see bench/live.py)
python -m bench organise [--sizes 1000,1000000] [--seconds 9] (see bench/organise.py)

Starts a redis-server and ``chatsessions serve`` (one worker), seeds sessions,
drives load with wrk from another process, and prints every figure as a ratio
against a baseline measured in the same run. See docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import median
from typing import Any

import aiohttp
import orjson
import redis
import redis.asyncio

from service.models import MessageIn, format_time
from service.store import Keys, SessionStore
from service.store.migrate import LAYOUT
from service.store.record import TITLE_AUTO, record_fields

from .load import (
    CONTENT,
    FIRST_PAGE,
    INGEST_FORMAT,
    LoadResult,
    client_load,
    ensure_wrk,
    ingest_script,
    pages_script,
    run_wrk,
)
from .servers import TOKEN, BaselineServer, Managed, RedisServer, ServiceServer

AUTH = {"Authorization": f"Bearer {TOKEN}"}
NAMESPACE = "default"
SEED_CHUNK = 20_000
BATCH_SIZE = 1000
MESSAGES_PER_SESSION = 20
ACTIVE_WINDOW_MS = 900_000
# Seconds of load, not measured, on each server before its first round.
WARM_UP_SECONDS = 2
# Offsets 0 to 999 in turn: the distinct-pages case never has two equal pages in flight.
DISTINCT_PAGES = 1000


# Every round of a case runs right after a round of its bare baseline, and each ratio
# pairs the two, so that a burst of load from the host's neighbours falls on both; the
# table gives the medians over the rounds, since the bare baseline alone moves within
# one run. Many short rounds, so that a burst spoils few of them.
ROUNDS = 9


@dataclass
class Row:
    case: str
    sessions: int
    rounds: list[LoadResult]
    # The baseline's result in each round (empty: no baseline).
    bare: list[LoadResult] = field(default_factory=list)
    # Redis time per page, one reading per window (empty: not measured).
    redis_usec: list[float] = field(default_factory=list)

    @property
    def requests_per_second(self) -> float:
        return median(r.requests_per_second for r in self.rounds)

    @property
    def p50_ms(self) -> float:
        return median(r.p50_ms for r in self.rounds)

    @property
    def p99_ms(self) -> float:
        return median(r.p99_ms for r in self.rounds)

    @property
    def ratios(self) -> list[float]:
        """Requests/s against the bare baseline's, round by round."""
        pairs = zip(self.rounds, self.bare, strict=True) if self.bare else ()
        return [r.requests_per_second / b.requests_per_second for r, b in pairs]

    @property
    def busy(self) -> list[float]:
        """The server's CPU cores in use, round by round (requests/s x CPU per request):
        under 1 a worker waits, on Redis or for work, instead of running."""
        return [
            r.requests_per_second * r.cpu_us_per_request / 1e6
            for r in self.rounds
            if r.cpu_us_per_request
        ]

    @property
    def cpu_ratios(self) -> list[float]:
        """The bare baseline's CPU time per request against ours, round by round: what
        the throughput ratio would be if both were held back by CPU alone."""
        pairs = zip(self.rounds, self.bare, strict=True) if self.bare else ()
        return [
            b.cpu_us_per_request / r.cpu_us_per_request
            for r, b in pairs
            if r.cpu_us_per_request and b.cpu_us_per_request
        ]


def seed_sessions(client: redis.Redis, count: int, now_ms: int, namespace: str = NAMESPACE) -> None:
    """Session records and index entries byte for byte as the store writes them,
    pipelined."""
    keys = Keys(namespace)
    for start in range(0, count, SEED_CHUNK):
        records: dict[str, list[str | bytes]] = {}
        scores: dict[str, int] = {}
        by_channel: dict[str, dict[str, int]] = {"web": {}, "telegram": {}}
        for n in range(start, min(count, start + SEED_CHUNK)):
            session_id = f"session_{n:08d}"
            channel = "telegram" if n % 2 else "web"
            score = now_ms - n * 1000
            stamp = format_time(score)
            records[keys.session(session_id)] = record_fields(
                title=f"Bench session number {n}",
                title_source=TITLE_AUTO,
                channel=channel,
                created_at=stamp,
                updated_at=stamp,
                message_count=3,
                metadata=None,
            )
            scores[session_id] = score
            by_channel[channel][session_id] = score
        pipe = client.pipeline(transaction=False)
        for key, fields in records.items():
            pipe.hset(key, items=fields)
        pipe.zadd(keys.index, scores)
        for channel, members in by_channel.items():
            if members:
                pipe.zadd(keys.channel(channel), members)
                pipe.sadd(keys.channels, channel)
        pipe.execute()
    # A service marks a namespace whose sessions are all in this layout; the seed's are.
    client.set(keys.layout, LAYOUT)


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


# Clients reading pages at once when Redis time per page is measured, as that many
# workers would: one coalescing worker sends Redis too few pages to keep it busy, and
# an idle Redis answers each page from cold caches.
PAGE_CLIENTS = 8
# Redis time per page is the median of this many readings, each over its own window,
# so that one window spoiled by the host's neighbours does not decide the figure.
PAGE_WINDOWS = 5
PAGE_SECONDS = 0.5


async def read_pages(
    stores: list[SessionStore], query: dict[str, Any], seconds: float = PAGE_SECONDS
) -> int:
    """Pages read through ``stores`` at once (each its own connection) for ``seconds``."""
    deadline = time.monotonic() + seconds
    pages = 0

    async def reader(store: SessionStore) -> None:
        nonlocal pages
        while time.monotonic() < deadline:
            now = time.time_ns() // 1_000_000
            await store.list_sessions(NAMESPACE, limit=50, now=now, **query)
            pages += 1

    await asyncio.gather(*(reader(store) for store in stores))
    return pages


@asynccontextmanager
async def page_stores(url: str) -> AsyncIterator[list[SessionStore]]:
    """PAGE_CLIENTS stores on the Redis at ``url``, each on a connection of its own."""
    clients = [redis.asyncio.Redis.from_url(url) for _ in range(PAGE_CLIENTS)]
    stores = [SessionStore(c, active_window_ms=ACTIVE_WINDOW_MS) for c in clients]
    try:
        yield stores
    finally:
        for store, client in zip(stores, clients, strict=True):
            await store.aclose()
            await client.aclose()


async def redis_times_per_page(
    url: str,
    client: redis.Redis,
    query: dict[str, Any],
    windows: int = PAGE_WINDOWS,
    seconds: float = PAGE_SECONDS,
) -> list[float]:
    """Redis time per page in each of ``windows`` windows, while PAGE_CLIENTS stores
    read the page; ``client``'s INFO commandstats is reset before each window."""
    readings: list[float] = []
    async with page_stores(url) as stores:
        for _ in range(windows):
            client.config_resetstat()
            await read_pages(stores, query, seconds)
            reading = redis_usec_per_page(client)
            if reading is not None:
                readings.append(reading)
    return readings


def redis_usec_per_page(client: redis.Redis) -> float | None:
    """Redis time per page from ``INFO commandstats`` since its last reset.

    A page is one MULTI/EXEC (EXEC's time includes the commands inside, a page script
    that rides along among them) or, for the pages SORT cannot serve, one EVALSHA.
    """
    stats = client.info("commandstats")

    def usec(name: str) -> float:
        return float(stats.get(f"cmdstat_{name}", {}).get("usec", 0))

    transactions = int(stats.get("cmdstat_exec", {}).get("calls", 0))
    if transactions:
        return (usec("exec") + usec("multi")) / transactions
    scripts = int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
    return usec("evalsha") / scripts if scripts else None


def fetch(url: str) -> bytes:
    request = urllib.request.Request(url, headers=AUTH)
    with urllib.request.urlopen(request, timeout=30) as response:
        body: bytes = response.read()
        return body


@dataclass
class ListStack:
    """What the list cases of one size run on: a Redis seeded with that many sessions,
    a service on it, and the bare baseline answering that size's first page."""

    sessions: int
    redis: RedisServer
    service: ServiceServer | None = None
    baseline: BaselineServer | None = None
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Each row with the path and wrk script of its rounds.
    measured: list[tuple[Row, str, str | None]] = field(default_factory=list)

    @property
    def rows(self) -> list[Row]:
        """The rows of the cases with a page of their own (not distinct pages)."""
        return [row for row, _, _ in self.measured if row.case in self.cases]

    def stop(self) -> None:
        for server in (self.baseline, self.service, self.redis):
            if server is not None:
                server.stop()


class Harness:
    def __init__(self, seconds: float, workdir: Path) -> None:
        self.seconds = seconds
        self.workdir = workdir
        self.wrk = ensure_wrk()
        self.redis = RedisServer(workdir / "redis").start()
        self.client = self.redis.client()
        self.service = ServiceServer(self.redis.url, workdir / "service").start()
        self.rows: list[Row] = []
        self.notes: list[str] = []
        if self.wrk is None:
            self.notes.append("wrk was not available: load came from an aiohttp client")

    def stop(self) -> None:
        self.service.stop()
        self.redis.stop()

    def warm_up(self, url: str, script: str | None = None, post_format: str = "") -> None:
        """Load that is not measured, on a server just started: its first second of load
        (allocations, the first pass through every path) is not what it serves after."""
        if self.wrk:
            run_wrk(self.wrk, url, WARM_UP_SECONDS, AUTH, script)
        else:
            client_load(url, WARM_UP_SECONDS, AUTH, post_format or None, 1000)

    def load(
        self, url: str, server: Managed, script: str | None = None, post_format: str = ""
    ) -> LoadResult:
        """One round of load on ``url``, served by ``server``, and the CPU time that
        server spent per request."""
        seconds = float(max(1, round(self.seconds / ROUNDS)))
        cpu_before = server.cpu_seconds()
        if self.wrk:
            result = run_wrk(self.wrk, url, seconds, AUTH, script)
        else:
            result = client_load(url, seconds, AUTH, post_format or None, 1000)
        cpu = server.cpu_seconds() - cpu_before
        requests = result.requests_per_second * seconds
        return replace(result, cpu_us_per_request=cpu / requests * 1e6 if requests else None)

    def prepare(self, stack: ListStack) -> None:
        """Seeds the stack's Redis, starts its service and baseline, and sets out its cases."""
        sessions = stack.sessions
        directory = self.workdir / f"list-{sessions}"
        client = stack.redis.client()
        before = used_memory(client)
        started = time.perf_counter()
        seed_sessions(client, sessions, int(time.time() * 1000))
        seeded = time.perf_counter() - started
        per_session = (used_memory(client) - before) / sessions
        client.close()
        self.notes.append(
            f"{sessions:>9,} sessions seeded in {seeded:.1f} s; "
            f"Redis memory {per_session:.0f} bytes per session"
        )
        stack.service = ServiceServer(stack.redis.url, directory / "service").start()
        first = FIRST_PAGE
        middle = orjson.loads(fetch(f"{stack.service.url}{first}&offset={sessions // 2}"))
        stack.cases = {
            "first page": {},
            "deep offset": {"offset": sessions // 2},
            "cursor page": {"cursor": middle["next_cursor"]},
            "channel page": {"channel": "telegram"},
        }
        # Paths with their queries: the service and the baseline are sent the same ones.
        paths = {
            case: first + "".join(f"&{name}={value}" for name, value in query.items())
            for case, query in stack.cases.items()
        }
        for path in paths.values():
            fetch(stack.service.url + path)
        stack.measured = [(Row(case, sessions, []), path, None) for case, path in paths.items()]
        if self.wrk:
            # No two requests in flight ask for the same page, so none shares a round trip:
            # what one worker serves when its pages all differ.
            script = pages_script(first, DISTINCT_PAGES)
            stack.measured.append((Row("distinct pages", sessions, []), first, script))
        page = fetch(stack.service.url + first)
        stack.baseline = BaselineServer(page, directory / "baseline").start()
        self.warm_up(stack.service.url + first)
        self.warm_up(stack.baseline.url + first)

    def list_cases(self, sizes: list[int]) -> None:
        """Every size has its own Redis and service, and their rounds take turns: a case's
        round at 1 M runs right beside its round at 1 k, so that latency at one size is
        compared with latency at another under the same load from the neighbours."""
        stacks: list[ListStack] = []
        try:
            for sessions in sizes:
                redis_server = RedisServer(self.workdir / f"list-{sessions}" / "redis")
                stacks.append(ListStack(sessions, redis_server.start()))
                self.prepare(stacks[-1])
            for _ in range(ROUNDS):
                for case in range(len(stacks[0].measured)):
                    for stack in stacks:
                        row, path, script = stack.measured[case]
                        assert stack.baseline is not None and stack.service is not None
                        base, service = stack.baseline, stack.service
                        row.bare.append(self.load(base.url + path, base, script))
                        row.rounds.append(self.load(service.url + path, service, script))
            for stack in stacks:
                client = stack.redis.client()
                for row in stack.rows:
                    row.redis_usec = asyncio.run(
                        redis_times_per_page(stack.redis.url, client, stack.cases[row.case])
                    )
                client.close()
        finally:
            for stack in stacks:
                stack.stop()
        for stack in stacks:
            self.rows += [row for row, _, _ in stack.measured]

    def ingest_cases(self) -> None:
        self.client.flushall()
        first = INGEST_FORMAT % 0
        row = Row("single ingest", 1000, [])
        baseline = BaselineServer(b"{}", self.workdir / "baseline").start()
        try:
            self.warm_up(baseline.url + first, ingest_script("warm"), INGEST_FORMAT)
            for round_number in range(ROUNDS):
                # Ids of the round's own, sent to both servers.
                script = ingest_script(f"r{round_number}-")
                row.bare.append(self.load(baseline.url + first, baseline, script, INGEST_FORMAT))
                row.rounds.append(
                    self.load(self.service.url + first, self.service, script, INGEST_FORMAT)
                )
        finally:
            baseline.stop()
        self.rows.append(row)
        stored, elapsed = asyncio.run(batch_load(self.service.url, self.seconds))
        rate = stored / elapsed
        self.notes.append(f"batch ingest of {BATCH_SIZE}-message bodies: {rate:,.0f} messages/s")

    def message_memory(self) -> None:
        """Redis bytes per stored 100-byte message beyond its content, via the store
        itself, and what each event the feed keeps costs. The feed's stream is left out
        of the first: it is trimmed to ``events_retention`` events, so it does not grow
        with the messages stored."""
        self.client.flushall()
        rate = asyncio.run(store_messages(self.redis.url, 1000, 1))
        events = Keys(NAMESPACE).events
        self.client.xtrim(events, maxlen=0, approximate=False)
        before = used_memory(self.client)
        count = asyncio.run(store_messages(self.redis.url, 1000, MESSAGES_PER_SESSION, first=1))
        kept = int(self.client.xlen(events))
        stream_bytes = int(self.client.memory_usage(events, samples=0) or 0)
        self.client.xtrim(events, maxlen=0, approximate=False)
        overhead = (used_memory(self.client) - before) / count - len(CONTENT)
        self.notes.append(
            f"Redis memory per stored message beyond its {len(CONTENT)}-byte content: "
            f"{overhead:.0f} bytes (1,000 sessions of {MESSAGES_PER_SESSION + 1} messages; "
            f"the feed's stream apart: {stream_bytes / kept:.0f} bytes an event, "
            f"{kept:,} events kept, at most events_retention); "
            f"store-level pipelined ingest {rate:,.0f} messages/s"
        )


async def store_messages(url: str, sessions: int, per_session: int, first: int = 0) -> float:
    """Ingests ``per_session`` messages into each session through SessionStore.add_messages;
    returns how many were stored (or, for the first call, messages per second)."""
    client = redis.asyncio.Redis.from_url(url)
    store = SessionStore(client, active_window_ms=ACTIVE_WINDOW_MS)
    started = time.perf_counter()
    stored = 0
    try:
        items = [
            (
                f"s{n}",
                MessageIn(f"tg-{n}-{m:04d}", "user", CONTENT, 1_700_000_000_000 + m, None, "web"),
            )
            for n in range(sessions)
            for m in range(first, first + per_session)
        ]
        for start in range(0, len(items), BATCH_SIZE):
            results = await store.add_messages(NAMESPACE, items[start : start + BATCH_SIZE], now=0)
            stored += sum(1 for r in results if not isinstance(r, Exception) and r.created)
    finally:
        await store.aclose()
        await client.aclose()
    elapsed = time.perf_counter() - started
    return stored / elapsed if first == 0 else stored


# Enough clients to keep one worker busy: each waits for its answer before sending
# again, so the worker has another client's batch to take meanwhile.
BATCH_CLIENTS = 4
BATCH_MARK = b"#BATCH#"


def batch_body(worker: int) -> bytes:
    """A client's 1,000-message body, with BATCH_MARK where the batch number goes: the
    bodies differ only in their message ids, so each is built once (1,000 dicts and a
    dump) and not per batch, leaving the client's core to the load it drives."""
    items = [
        {
            "session_id": f"batch{worker}-{n % 100}",
            "channel": "web",
            "role": "user",
            "content": CONTENT,
            "id": f"b{worker}-{BATCH_MARK.decode()}-{n}",
        }
        for n in range(BATCH_SIZE)
    ]
    return orjson.dumps({"messages": items})


async def batch_load(url: str, seconds: float, clients: int = BATCH_CLIENTS) -> tuple[int, float]:
    """Messages stored through POST /api/messages by ``clients`` clients, each sending its
    next batch when the last is answered, and the seconds it took."""
    stored = 0
    deadline = time.monotonic() + seconds
    started = time.monotonic()

    async def client(worker: int, session: aiohttp.ClientSession) -> None:
        nonlocal stored
        template = batch_body(worker)
        batch_number = 0
        while time.monotonic() < deadline:
            batch_number += 1
            async with session.post(
                url + "/api/messages",
                data=template.replace(BATCH_MARK, b"%d" % batch_number),
                headers={**AUTH, "Content-Type": "application/json"},
            ) as response:
                stored += orjson.loads(await response.read())["created"]

    async with aiohttp.ClientSession() as session:
        await asyncio.gather(*(client(n, session) for n in range(clients)))
    return stored, time.monotonic() - started


# The list cases the throughput target is read over (pages of 50, each against the bare
# app answering a page of 50: distinct pages is a case of our own), and the target.
TARGET_LIST_CASES = ("first page", "deep offset", "cursor page", "channel page")
LIST_TARGET = 0.6


def p50_against(row: Row, smallest: Row | None) -> str:
    """The row's p50 against the same case's at the smallest size, round by round (the
    sizes' rounds take turns), as the median of the rounds."""
    if smallest is None:
        return "-"
    pairs = zip(row.rounds, smallest.rounds, strict=False)
    return median_of([r.p50_ms / s.p50_ms for r, s in pairs if s.p50_ms])


def median_of(values: list[float], digits: int = 2) -> str:
    return f"{median(values):.{digits}f}" if values else "-"


def spread(values: list[float], digits: int = 2) -> str:
    """The median, and the lowest and highest reading: ``0.61 (0.55-0.70)``."""
    if not values:
        return "-"
    low, high = min(values), max(values)
    return f"{median_of(values, digits)} ({low:.{digits}f}-{high:.{digits}f})"


def report(harness: Harness) -> str:
    lines = [
        f"Medians of {ROUNDS} rounds, each round of a case right after one of its bare baseline; "
        "the sizes' rounds take turns, and p50 vs 1 k is the median of the rounds' ratios.",
        "",
        "| case | sessions | req/s | p50 ms | p99 ms | Redis µs/page (windows) | p50 vs 1 k "
        "| req/s vs bare (rounds) | CPU/request vs bare (rounds) | cores busy |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    list_rows = [r for r in harness.rows if r.case != "single ingest"]
    smallest = min(r.sessions for r in list_rows)
    at_smallest = {r.case: r for r in list_rows if r.sessions == smallest}
    for row in harness.rows:
        lines.append(
            f"| {row.case} | {row.sessions:,} | {row.requests_per_second:,.0f} "
            f"| {row.p50_ms:.2f} | {row.p99_ms:.2f} | {spread(row.redis_usec, 1)} "
            f"| {p50_against(row, at_smallest.get(row.case))} | {spread(row.ratios)} "
            f"| {spread(row.cpu_ratios)} | {median_of(row.busy)} |"
        )
    baselines: dict[str, Row] = {}
    for row in harness.rows:
        label = (
            "bare aiohttp, parse JSON and 201"
            if row.case == "single ingest"
            else f"bare aiohttp, same bytes as the {row.sessions:,} first page"
        )
        baselines.setdefault(label, Row("bare", row.sessions, [])).rounds.extend(row.bare)
    for label, base in baselines.items():
        if not base.rounds:
            continue
        lines.append(
            f"| {label} | | {base.requests_per_second:,.0f} | {base.p50_ms:.2f} "
            f"| {base.p99_ms:.2f} | | | 1.00 | 1.00 | {median_of(base.busy)} |"
        )
    # The target's one figure for the list: the median of its cases' rounds at every size.
    targeted = [r for r in list_rows if r.case in TARGET_LIST_CASES and r.ratios]
    if targeted:
        medians = [median(r.ratios) for r in targeted]
        pooled = [ratio for r in targeted for ratio in r.ratios]
        lines += [
            "",
            f"List throughput against bare, the median of all {len(pooled)} rounds of "
            f"{', '.join(TARGET_LIST_CASES)}: {median_of(pooled)} (the rows' medians "
            f"{min(medians):.2f}-{max(medians):.2f}, "
            f"{sum(m >= LIST_TARGET for m in medians)} of {len(medians)} at {LIST_TARGET} or more)",
        ]
    every = [result for row in harness.rows for result in row.rounds]
    errors = sum(result.errors for result in every)
    tools = sorted({result.tool for result in every})
    lines += ["", *[f"- {note}" for note in harness.notes]]
    lines += [
        f"- Redis µs/page: Redis time per page from INFO commandstats while {PAGE_CLIENTS} "
        "clients read the case's page at once, as that many workers would; the median of "
        f"{PAGE_WINDOWS} windows of {PAGE_SECONDS:g} s",
        f"- load generator: {', '.join(tools)}; non-2xx or socket errors: {errors}",
    ]
    return "\n".join(lines)


def main() -> None:
    if sys.argv[1:2] == ["flood"]:
        from .flood import main as flood_main

        flood_main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["transfer"]:
        from .transfer import main as transfer_main

        transfer_main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["live"]:
        from .live import main as live_main

        live_main(sys.argv[2:])
        return
    if sys.argv[1:2] == ["organise"]:
        from .organise import main as organise_main

        organise_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--seconds", type=float, default=9.0, help="per case, over all rounds")
    parser.add_argument("--quick", action="store_true", help="1 k and 10 k sessions, 3 s a case")
    args = parser.parse_args()
    sizes = [1000, 10_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    seconds = 3.0 if args.quick else args.seconds
    workdir = Path(tempfile.mkdtemp(prefix="chatsessions-bench-"))
    harness = Harness(seconds, workdir)
    try:
        harness.list_cases(sizes)
        harness.ingest_cases()
        harness.message_memory()
    finally:
        harness.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(report(harness))


if __name__ == "__main__":
    main()
