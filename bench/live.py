"""python -m bench live [--sizes 1000,1000000] [--seconds 9] [--quick] [--feed-only | --no-feed]

The rows of SPEC §6 (issue 20's targets), each against a baseline measured in the same
run, one worker:

- event cost: single ingest with the event appended by every write against the same
  service with events.lua's ``emit`` made to do nothing (bench/noevents.py), each on a
  redis-server of its own, rounds taking turns with the bare app's;
- 304: ``GET /api/sessions?limit=50`` with ``If-None-Match`` holding the current tag,
  against a bare app answering the same 304 (bench/fixed.py), and against the bare app
  answering the page itself; the namespace's sessions are all older than the active
  window, so that its tag holds through the run, and each round checks it still does;
- counts: ``GET /api/sessions/counts`` p50 at the largest size against the smallest
  (organised sessions seeded as the scripts write them, bench/seed.py), and against a
  bare app answering the same bytes;
- the feed (bench/feed_load.py): subscribers of ``GET /api/events`` and writes at a
  steady rate; latency from each write's acknowledgement to its event's arrival, and
  the writes' own throughput with the subscribers against without.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import orjson
import redis.asyncio

from service.models import MessageIn
from service.store import SessionStore

from .__main__ import (
    ACTIVE_WINDOW_MS,
    AUTH,
    NAMESPACE,
    ROUNDS,
    Row,
    fetch,
    median_of,
    p50_against,
    spread,
)
from .fixed import FixedServer
from .load import CONTENT, FIRST_PAGE, INGEST_FORMAT, LoadResult, ensure_wrk, ingest_script
from .rounds import load_round, warm_up
from .seed import seed_organised
from .servers import TOKEN, BaselineServer, Managed, RedisServer, ServiceServer, wait_http

COUNTS_PATH = "/api/sessions/counts"
# Where ``python -m bench.noevents`` is found: the checkout holding this bench.
BENCH_ROOT = Path(__file__).resolve().parent.parent
# Targets (issue 20).
EVENT_COST = 0.15
NOT_MODIFIED_BARE = 0.8
COUNTS_FLAT = 1.25
# Sessions in the 304 row's namespace.
TAGGED_SESSIONS = 1000


class NoEventsService(ServiceServer):
    """``chatsessions serve`` whose write scripts append no event (bench/noevents.py),
    started as ServiceServer starts the service."""

    def start(self) -> NoEventsService:
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "serve.log", "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.noevents", "serve"],
                cwd=BENCH_ROOT, env=self.environment(), stdin=subprocess.DEVNULL,
                stdout=log, stderr=log,
            )  # fmt: skip
        wait_http(self.url + "/healthz", self.process)
        return self


def answer_of(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a GET (a 304 included)."""
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as answer:
        return answer.code, dict(answer.headers), answer.read()


@dataclass
class LiveRun:
    seconds: float
    workdir: Path
    rounds: int = ROUNDS
    warm: bool = True
    wrk: str | None = field(default_factory=ensure_wrk)
    rows: list[Row] = field(default_factory=list)
    # The event cost: with/without, round by round.
    event_ratios: list[float] = field(default_factory=list)
    # The 304 row against the bare page, round by round.
    not_modified_vs_page: list[float] = field(default_factory=list)
    counts_rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    feed: FeedResult | None = None

    @property
    def round_seconds(self) -> float:
        return max(1.0, round(self.seconds / self.rounds))

    def round(self, url: str, server: Managed, headers: dict[str, str], *script: str) -> LoadResult:
        """One round; ``script`` (a wrk script) posts single messages."""
        if script:
            return load_round(
                self.wrk, url, server, self.round_seconds, headers, script[0], INGEST_FORMAT
            )
        return load_round(self.wrk, url, server, self.round_seconds, headers)

    def event_cost(self) -> None:
        directory = self.workdir / "events"
        started: list[Managed] = []
        try:
            with_redis = RedisServer(directory / "redis-with").start()
            started.append(with_redis)
            without_redis = RedisServer(directory / "redis-without").start()
            started.append(without_redis)
            with_events = ServiceServer(with_redis.url, directory / "with").start()
            started.append(with_events)
            without = NoEventsService(without_redis.url, directory / "without").start()
            started.append(without)
            baseline = BaselineServer(b"{}", directory / "baseline").start()
            started.append(baseline)
            first = INGEST_FORMAT % 0
            if self.warm:
                for origin in (baseline.url, with_events.url, without.url):
                    warm = ingest_script("warm")
                    warm_up(self.wrk, origin + first, AUTH, warm, INGEST_FORMAT)
            rows = (
                Row("single ingest, event appended", 1000, []),
                Row("single ingest, no event (scripts variant)", 1000, []),
            )
            for number in range(self.rounds):
                script = ingest_script(f"r{number}-")
                bare = self.round(baseline.url + first, baseline, AUTH, script)
                # The two services take turns at going first.
                order = [(rows[0], with_events), (rows[1], without)]
                for row, service in order if number % 2 == 0 else order[::-1]:
                    row.bare.append(bare)
                    row.rounds.append(self.round(service.url + first, service, AUTH, script))
            self.rows += rows
            self.event_ratios = [
                w.requests_per_second / o.requests_per_second
                for w, o in zip(rows[0].rounds, rows[1].rounds, strict=True)
            ]
            stream = f"cs:{{{NAMESPACE}}}:events"
            lengths = []
            for redis_server in (with_redis, without_redis):
                client = redis_server.client()
                lengths.append(int(client.xlen(stream)))
                client.close()
            self.notes.append(
                f"events in the stream after the ingest rounds: {lengths[0]:,} with the event "
                f"(trimmed near events_retention), {lengths[1]:,} in the scripts variant"
            )
        finally:
            for running in reversed(started):
                running.stop()

    def not_modified(self) -> None:
        directory = self.workdir / "etag"
        started: list[Managed] = []
        try:
            redis_server = RedisServer(directory / "redis").start()
            started.append(redis_server)
            client = redis_server.client()
            # Every session older than the active window: the tag moves with activity too.
            seed_organised(client, TAGGED_SESSIONS, int(time.time() * 1000) - 2 * ACTIVE_WINDOW_MS)
            client.close()
            service = ServiceServer(redis_server.url, directory / "service").start()
            started.append(service)
            url = service.url + FIRST_PAGE
            _, headers, page = answer_of(url, AUTH)
            tag = headers["ETag"]
            conditional = {**AUTH, "If-None-Match": tag}
            if answer_of(url, conditional)[0] != 304:
                raise RuntimeError("the service did not answer 304 to its own current tag")
            bare_304 = FixedServer(directory / "bare-304", 304, {"ETag": tag}, b"").start()
            started.append(bare_304)
            bare_page = BaselineServer(page, directory / "bare-page").start()
            started.append(bare_page)
            if self.warm:
                warm_up(self.wrk, url, conditional)
                warm_up(self.wrk, bare_304.url + FIRST_PAGE, conditional)
                warm_up(self.wrk, bare_page.url + FIRST_PAGE, conditional)
            row = Row("304 (If-None-Match, current tag)", TAGGED_SESSIONS, [])
            stale = 0
            for _ in range(self.rounds):
                row.bare.append(self.round(bare_304.url + FIRST_PAGE, bare_304, conditional))
                page_round = self.round(bare_page.url + FIRST_PAGE, bare_page, conditional)
                row.rounds.append(self.round(url, service, conditional))
                self.not_modified_vs_page.append(
                    row.rounds[-1].requests_per_second / page_round.requests_per_second
                )
                stale += answer_of(url, conditional)[0] != 304
            self.rows.append(row)
            self.notes.append(
                f"304 row: the tag answered 304 after {self.rounds - stale} of {self.rounds} "
                "rounds (a round after which it did not may hold 200s)"
            )
        finally:
            for running in reversed(started):
                running.stop()

    def counts(self, sizes: list[int]) -> None:
        started: list[Managed] = []
        try:
            stacks: list[tuple[ServiceServer, FixedServer, Row]] = []
            for sessions in sizes:
                directory = self.workdir / f"counts-{sessions}"
                redis_server = RedisServer(directory / "redis").start()
                started.append(redis_server)
                client = redis_server.client()
                begun = time.perf_counter()
                seed_organised(client, sessions, int(time.time() * 1000))
                client.close()
                self.notes.append(
                    f"{sessions:,} organised sessions seeded in "
                    f"{time.perf_counter() - begun:.1f} s for the counts row"
                )
                service = ServiceServer(redis_server.url, directory / "service").start()
                started.append(service)
                body = fetch(service.url + COUNTS_PATH)
                bare = FixedServer(
                    directory / "bare", 200, {"Content-Type": "application/json"}, body
                ).start()
                started.append(bare)
                if self.warm:
                    warm_up(self.wrk, service.url + COUNTS_PATH, AUTH)
                    warm_up(self.wrk, bare.url + COUNTS_PATH, AUTH)
                stacks.append((service, bare, Row("counts", sessions, [])))
            for _ in range(self.rounds):
                for service, bare, row in stacks:
                    row.bare.append(self.round(bare.url + COUNTS_PATH, bare, AUTH))
                    row.rounds.append(self.round(service.url + COUNTS_PATH, service, AUTH))
            self.counts_rows = [row for _, _, row in stacks]
        finally:
            for running in reversed(started):
                running.stop()


# The feed row (issue 20): subscribers, writes a second, and seconds of writes.
FEED_SUBSCRIBERS = 1000
FEED_RATE = 2000
FEED_SECONDS = 10.0
FEED_SESSIONS = 1000
# Every this many subscribers, one notes each event's arrival.
SAMPLE_EVERY = 100
# Seconds the subscribers go on reading after the last write was answered.
FEED_TAIL = 2.0
FEED_LATENCY_MS = 50.0
FEED_THROUGHPUT = 0.8


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(len(ordered) * fraction + 0.5) - 1))]


@dataclass
class FeedResult:
    subscribers: int
    rate: int
    seconds: float
    narrow: bool = False
    # Each sampled arrival of an acknowledged write's event, less its acknowledgement.
    latencies_ms: list[float] = field(default_factory=list)
    writes: int = 0
    write_statuses: dict[str, int] = field(default_factory=dict)
    write_late_p99_ms: float = 0.0
    # Writes sent on a connection still waiting for an earlier answer (none idle).
    sent_behind: int = 0
    sampled: int = 0
    # The sampled subscribers' arrivals there should be.
    expected: int = 0
    # Cores each process used from the first write to the last answer.
    service_cores: float = 0.0
    subscriber_cores: float = 0.0
    writer_cores: float = 0.0
    redis_cores: float = 0.0
    # And every process of the machine, these and whatever else ran meanwhile.
    host_cores: float = 0.0
    # Events each parsed subscriber got, fewest and most (bench/feed_load.py's Stream).
    events_min: int = 0
    events_max: int = 0
    # Events' bytes each subscriber got, fewest and most.
    event_bytes_min: int = 0
    event_bytes_max: int = 0
    ended_early: int = 0
    connected: int = 0
    megabytes: float = 0.0
    # Closed-loop single ingest without and with the subscribers open, round by round.
    without: list[LoadResult] = field(default_factory=list)
    with_subscribers: list[LoadResult] = field(default_factory=list)
    # Subscribers the service dropped during each with-round.
    dropped: list[int] = field(default_factory=list)

    @property
    def coverage(self) -> float:
        """Sampled arrivals of acknowledged writes against what every sampled subscriber
        should have got."""
        return len(self.latencies_ms) / self.expected if self.expected else 0.0

    @property
    def complete(self) -> bool:
        """Every subscriber stayed, every sampled one heard every acknowledged write, and
        (whole) every one got the same events' bytes as the parsed ones."""
        same = self.narrow or self.event_bytes_min == self.event_bytes_max
        return self.ended_early == 0 and self.coverage >= 0.999 and same

    @property
    def p99_ms(self) -> float:
        return percentile([max(0.0, v) for v in self.latencies_ms], 0.99)

    @property
    def p50_ms(self) -> float:
        return percentile([max(0.0, v) for v in self.latencies_ms], 0.50)

    @property
    def throughput_ratios(self) -> list[float]:
        pairs = zip(self.with_subscribers, self.without, strict=True)
        return [w.requests_per_second / o.requests_per_second for w, o in pairs]


class Subscribers:
    """The subscriber process (bench/feed_load.py), ready once every stream is open."""

    def __init__(self, url: str, count: int, out: Path, narrow: bool) -> None:
        self.out = out
        args = {
            "url": url,
            "token": TOKEN,
            "subscribers": count,
            "sample_every": SAMPLE_EVERY,
            "narrow": narrow,
            "sessions": FEED_SESSIONS,
            "out": str(out),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.feed_load", "subscribe", orjson.dumps(args).decode()],
            cwd=BENCH_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )  # fmt: skip
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != b"ready":
            self.stop()
            raise RuntimeError(f"the subscribers did not all connect: {line!r}")

    def finish(self) -> dict[str, Any]:
        """Tell them to stop; their findings."""
        assert self.process.stdin is not None
        self.process.stdin.write(b"stop\n")
        self.process.stdin.flush()
        self.process.wait(FEED_GUARD)
        findings: dict[str, Any] = orjson.loads(self.out.read_bytes())
        return findings

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# A guard against a hang; never part of a figure.
FEED_GUARD = 120.0


async def feed_sessions(url: str, sessions: int) -> None:
    """One message in each session the feed's writes go to, so that they exist."""
    client = redis.asyncio.Redis.from_url(url)
    store = SessionStore(client, active_window_ms=ACTIVE_WINDOW_MS)
    try:
        items = [
            (f"feed{n}", MessageIn(f"first-{n}", "user", CONTENT, 1_700_000_000_000, None, "web"))
            for n in range(sessions)
        ]
        await store.add_messages(NAMESPACE, items, now=0)
    finally:
        await store.aclose()
        await client.aclose()


def feed_row(
    run: LiveRun,
    subscribers: int = FEED_SUBSCRIBERS,
    rate: int = FEED_RATE,
    seconds: float = FEED_SECONDS,
    narrow: bool = False,
) -> FeedResult:
    """The latency phase, then the throughput rounds (without, then with the subscribers
    open, in turns). ``narrow``: each subscriber asks for one session's events."""
    directory = run.workdir / "feed"
    result = FeedResult(subscribers, rate, seconds, narrow)
    started: list[Managed] = []
    try:
        redis_server = RedisServer(directory / "redis").start()
        started.append(redis_server)
        asyncio.run(feed_sessions(redis_server.url, FEED_SESSIONS))
        service = ServiceServer(redis_server.url, directory / "service").start()
        started.append(service)
        first = INGEST_FORMAT % 0
        if run.warm:
            warm_up(run.wrk, service.url + first, AUTH, ingest_script("warm"), INGEST_FORMAT)
        listening = Subscribers(service.url, subscribers, directory / "subscribers.json", narrow)
        try:
            assert service.process and listening.process and redis_server.process
            args = {
                "url": service.url,
                "token": TOKEN,
                "rate": rate,
                "seconds": seconds,
                "sessions": FEED_SESSIONS,
                "label": f"w{time.time_ns()}",
                "out": str(directory / "writes.json"),
                # The processes whose cores the writer reads over its writing.
                "pids": {
                    "service": service.process.pid,
                    "subscribers": listening.process.pid,
                    "redis": redis_server.process.pid,
                },
            }
            subprocess.run(
                [sys.executable, "-m", "bench.feed_load", "write", orjson.dumps(args).decode()],
                cwd=BENCH_ROOT, check=True, timeout=seconds + FEED_GUARD,
            )  # fmt: skip
            time.sleep(FEED_TAIL)
            heard = listening.finish()
        finally:
            listening.stop()
        written = orjson.loads((directory / "writes.json").read_bytes())
        acks: dict[str, float] = written["acks"]
        result.writes = len(acks)
        result.write_statuses = written["statuses"]
        result.write_late_p99_ms = written["late_p99_ms"]
        result.sent_behind = written["sent_behind_another"]
        cores = written["cores"]
        result.service_cores, result.subscriber_cores = cores["service"], cores["subscribers"]
        result.writer_cores, result.redis_cores = cores["writer"], cores["redis"]
        result.host_cores = cores["host"]
        result.sampled = len(heard["arrivals"])
        # Each sampled subscriber should hear every write to the sessions it follows.
        numbers = [int(message_id.rpartition("-")[2]) for message_id in acks]
        for subscriber in heard["sampled_numbers"]:
            if narrow:
                own = subscriber % FEED_SESSIONS
                result.expected += sum(n % FEED_SESSIONS == own for n in numbers)
            else:
                result.expected += len(numbers)
        for arrivals in heard["arrivals"]:
            for message_id, arrived in arrivals:
                if message_id in acks:
                    result.latencies_ms.append((arrived - acks[message_id]) * 1000)
        result.events_min, result.events_max = min(heard["events"]), max(heard["events"])
        event_bytes = heard["event_bytes"]
        result.event_bytes_min, result.event_bytes_max = min(event_bytes), max(event_bytes)
        result.ended_early = heard["ended_early"]
        result.connected = heard["connected"]
        result.megabytes = heard["bytes"] / 1e6
        for number in range(run.rounds):
            script = ingest_script(f"r{number}-")
            result.without.append(run.round(service.url + first, service, AUTH, script))
            listening = Subscribers(service.url, subscribers, directory / "round.json", narrow)
            try:
                result.with_subscribers.append(
                    run.round(service.url + first, service, AUTH, script)
                )
                result.dropped.append(listening.finish()["ended_early"])
            finally:
                listening.stop()
    finally:
        for running in reversed(started):
            running.stop()
    run.feed = result
    return result


def feed_report(result: FeedResult) -> list[str]:
    others = "" if result.narrow else ", the others count their events' bytes"
    lines = [
        "",
        f"Feed: {result.subscribers:,} subscribers of GET /api/events in one namespace "
        f"({'each narrowed to one session by ?session_id=' if result.narrow else 'whole'}), "
        f"one worker, {result.rate:,} single-message writes a second for "
        f"{result.seconds:g} s over {FEED_SESSIONS:,} sessions; every {SAMPLE_EVERY}th "
        f"subscriber ({result.sampled}) parses its events and notes each one's arrival"
        f"{others}; cores are read over the writing.",
        "",
        "| feed | figure |",
        "|---|---:|",
        f"| writes acknowledged (statuses) | {result.writes:,} ({result.write_statuses}) |",
        f"| writes sent late, p99 ms (the writer's own lag) | {result.write_late_p99_ms:.1f} |",
        f"| writes sent behind another on its connection (none idle) | {result.sent_behind:,} |",
        f"| subscribers connected / dropped by the service | {result.connected:,} / "
        f"{result.ended_early:,} |",
        f"| events per parsed subscriber, fewest-most | "
        f"{result.events_min:,}-{result.events_max:,} |",
        f"| events' bytes per subscriber, fewest-most | "
        f"{result.event_bytes_min:,}-{result.event_bytes_max:,} |",
        f"| MB received by the subscribers | {result.megabytes:,.0f} |",
        f"| cores busy while writing: service / subscribers' process / writer / Redis | "
        f"{result.service_cores:.2f} / {result.subscriber_cores:.2f} / "
        f"{result.writer_cores:.2f} / {result.redis_cores:.2f} |",
        f"| cores busy on the whole machine meanwhile (of {os.cpu_count()}) | "
        f"{result.host_cores:.2f} |",
        f"| sampled arrivals of acknowledged writes / expected | {result.coverage:.3f} |",
        f"| ack to arrival p50 ms | {result.p50_ms:.1f} |",
        f"| ack to arrival p99 ms | {result.p99_ms:.1f} |",
        f"| arrivals before their ack | "
        f"{sum(v < 0 for v in result.latencies_ms):,} of {len(result.latencies_ms):,} |",
    ]
    without = [r.requests_per_second for r in result.without]
    with_open = [r.requests_per_second for r in result.with_subscribers]
    if without and with_open:
        lines += [
            f"| single ingest req/s, closed loop, no subscriber (rounds) | {spread(without, 0)} |",
            f"| single ingest req/s with the subscribers open (rounds) | {spread(with_open, 0)} |",
            f"| subscribers dropped during each with-round | {result.dropped} |",
        ]
    return lines


def verdict(met: bool) -> str:
    return "yes" if met else "no"


def report(run: LiveRun) -> str:
    lines = [
        f"Medians of {run.rounds} rounds, each right after its baseline's round.",
        "",
        "| case | sessions | req/s | p50 ms | p99 ms | p50 vs smallest | req/s vs bare (rounds) "
        "| CPU/request vs bare (rounds) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    smallest = min(run.counts_rows, key=lambda r: r.sessions) if run.counts_rows else None
    for row in [*run.rows, *run.counts_rows]:
        against = p50_against(row, smallest) if row.case == "counts" else "-"
        lines.append(
            f"| {row.case} | {row.sessions:,} | {row.requests_per_second:,.0f} "
            f"| {row.p50_ms:.2f} | {row.p99_ms:.2f} | {against} | {spread(row.ratios)} "
            f"| {spread(row.cpu_ratios)} |"
        )
    lines += ["", "| target | reading | met |", "|---|---|---|"]
    if run.event_ratios:
        cost = 1 - median(run.event_ratios)
        lines.append(
            f"| the event on every write costs ≤ {EVENT_COST:.0%} of single-ingest req/s "
            f"(1 - with/without, median of rounds; rounds {spread(run.event_ratios)}) "
            f"| {cost:.1%} | {verdict(cost <= EVENT_COST)} |"
        )
    for row in run.rows:
        if row.case.startswith("304") and row.ratios:
            lines.append(
                f"| 304 answers ≥ {NOT_MODIFIED_BARE:g} x bare 304 req/s | {median_of(row.ratios)} "
                f"| {verdict(median(row.ratios) >= NOT_MODIFIED_BARE)} |"
            )
            lines.append(
                f"| (304 answers against the bare app answering the page itself) "
                f"| {spread(run.not_modified_vs_page)} "
                f"| {verdict(median(run.not_modified_vs_page) >= NOT_MODIFIED_BARE)} |"
            )
    if smallest is not None:
        largest = max(run.counts_rows, key=lambda r: r.sessions)
        pairs = zip(largest.rounds, smallest.rounds, strict=False)
        ratios = [r.p50_ms / s.p50_ms for r, s in pairs if s.p50_ms]
        if ratios:
            lines.append(
                f"| counts p50 at {largest.sessions:,} ≤ {COUNTS_FLAT:g} x at "
                f"{smallest.sessions:,} | {median(ratios):.2f} "
                f"| {verdict(median(ratios) <= COUNTS_FLAT)} |"
            )
    feed = run.feed
    if isinstance(feed, FeedResult):
        complete = feed.complete
        lines.append(
            f"| feed: write ack to event arrival p99 ≤ {FEED_LATENCY_MS:g} ms "
            f"({feed.subscribers:,} {'narrowed ' if feed.narrow else ''}subscribers, "
            f"{feed.rate:,} writes/s; every event "
            f"delivered: {verdict(complete)}) | {feed.p99_ms:.1f} ms "
            f"| {verdict(feed.p99_ms <= FEED_LATENCY_MS and complete)} |"
        )
        if feed.throughput_ratios:
            ratio = median(feed.throughput_ratios)
            lines.append(
                f"| feed: writes' req/s with subscribers ≥ {FEED_THROUGHPUT:g} x without "
                f"(rounds {spread(feed.throughput_ratios)}; subscribers dropped "
                f"{sum(feed.dropped):,}) | {ratio:.2f} "
                f"| {verdict(ratio >= FEED_THROUGHPUT and not any(feed.dropped))} |"
            )
        lines += feed_report(feed)
    every = [r for row in [*run.rows, *run.counts_rows] for r in row.rounds]
    errors = sum(result.errors for result in every)
    tools = sorted({result.tool for result in every})
    notes = [*run.notes, f"load generator: {', '.join(tools)}; non-2xx or socket errors: {errors}"]
    return "\n".join([*lines, "", *[f"- {note}" for note in notes]])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench live", description=__doc__)
    parser.add_argument("--sizes", default="1000,1000000", help="of the counts row")
    parser.add_argument("--seconds", type=float, default=9.0, help="per case, over all rounds")
    parser.add_argument("--quick", action="store_true", help="1 k and 10 k sessions")
    parser.add_argument("--subscribers", type=int, default=FEED_SUBSCRIBERS)
    parser.add_argument("--rate", type=int, default=FEED_RATE, help="the feed's writes a second")
    parser.add_argument("--feed-seconds", type=float, default=FEED_SECONDS)
    parser.add_argument("--feed-only", action="store_true", help="the feed row alone")
    parser.add_argument(
        "--narrow", action="store_true", help="each subscriber follows one session (?session_id=)"
    )
    parser.add_argument("--no-feed", action="store_true", help="every row but the feed's")
    args = parser.parse_args(argv)
    sizes = [1000, 10_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="chatsessions-bench-live-"))
    run = LiveRun(args.seconds, workdir)
    try:
        if not args.feed_only:
            run.event_cost()
            run.not_modified()
            run.counts(sizes)
        if not args.no_feed:
            feed_row(run, args.subscribers, args.rate, args.feed_seconds, args.narrow)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(report(run))
