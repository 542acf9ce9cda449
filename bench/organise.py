"""python -m bench organise [--sizes 1000,1000000] [--seconds 9] [--quick]

The rows of SPEC §7 (issue 21's targets), each a ratio against a baseline measured in
the same run:

- each single-filter page (tag, archived=true, pinned=true, user, reader): p50 at the
  largest size against the smallest, and requests/s against the bare aiohttp app
  answering the same bytes (bench/baseline.py);
- a two-filter page (a tag and a channel, matched by 1 % of sessions, a bounded walk):
  p50 at the largest size against the smallest;
- Redis memory per session at the largest size, each with one tag and one user, on a
  redis-server run with the embedded server's hash-max-ziplist-value;
- single ingest with 20 readers registered (each has marked every ingested session
  read), against the bare app parsing the same JSON, beside single ingest with none.

The sessions are seeded straight into Redis as the scripts write them (bench/seed.py);
each size has its own redis-server and ``chatsessions serve`` (one worker), and the
sizes' rounds take turns, each right after its bare baseline's (as bench/__main__.py's
list rows do).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

import orjson
import redis.asyncio

from service.embedded import HASH_VALUE_BYTES
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
    used_memory,
)
from .load import CONTENT, FIRST_PAGE, INGEST_FORMAT, ensure_wrk, ingest_script
from .rounds import load_round, warm_up
from .seed import FREQUENT_USER, TAGS, organised, seed_organised
from .servers import BaselineServer, RedisServer, ServiceServer

READERS = tuple(f"reader{k:02d}" for k in range(20))
# Sessions each reader has marked read in the list stacks (the most recent ones).
READ_SESSIONS = 50
# The cases and their queries, sent alike to the service and its bare baseline.
FILTER_CASES = {
    "tag page": f"&tag={TAGS[3]}",
    "archived page": "&archived=true",
    "pinned page": "&pinned=true",
    "user page": f"&user={FREQUENT_USER}",
    "reader page": f"&reader={READERS[0]}",
}
COMBINATION_CASES = {"tag + channel page": f"&tag={TAGS[3]}&channel=telegram"}
CASES = {**FILTER_CASES, **COMBINATION_CASES}
# The sessions ingest writes to (INGEST_FORMAT), as the main harness's ingest row.
INGEST_SESSIONS = 1000
# Targets (issue 21).
FILTER_FLAT = 1.25
COMBINATION_FLAT = 2.0
FILTER_BARE = 0.5
INGEST_BARE = 0.5
MEMORY_BYTES = 600
REDIS_CONFIG = ("--hash-max-ziplist-value", str(HASH_VALUE_BYTES))


@dataclass
class Stack:
    """A size's redis-server, seeded, its service, and a bare baseline per case."""

    sessions: int
    redis: RedisServer
    service: ServiceServer | None = None
    baselines: dict[str, BaselineServer] = field(default_factory=dict)
    # Each case's total (the page's "total"), whether the service said it is exact, and
    # the sessions on its first page.
    totals: dict[str, tuple[int, bool, int]] = field(default_factory=dict)
    rows: dict[str, Row] = field(default_factory=dict)
    memory_per_session: float = 0.0
    seed_seconds: float = 0.0

    def stop(self) -> None:
        for server in [*self.baselines.values(), self.service, self.redis]:
            if server is not None:
                server.stop()


async def mark_reads(url: str, session_ids: list[str], readers: tuple[str, ...]) -> None:
    """Every reader marks every one of ``session_ids`` read, through the store's own
    script (which keeps the readers set and the read-through counts)."""
    client = redis.asyncio.Redis.from_url(url)
    store = SessionStore(client, active_window_ms=ACTIVE_WINDOW_MS)
    try:
        for reader in readers:
            for start in range(0, len(session_ids), 200):
                await asyncio.gather(
                    *(
                        store.mark_read(NAMESPACE, session_id, reader, up_to=None, now=0)
                        for session_id in session_ids[start : start + 200]
                    )
                )
    finally:
        await store.aclose()
        await client.aclose()


async def first_messages(url: str, sessions: int) -> None:
    """One message in each of the sessions ingest writes to, so that they exist."""
    client = redis.asyncio.Redis.from_url(url)
    store = SessionStore(client, active_window_ms=ACTIVE_WINDOW_MS)
    try:
        items = [
            (f"bench{n}", MessageIn(f"first-{n}", "user", CONTENT, 1_700_000_000_000, None, "web"))
            for n in range(sessions)
        ]
        await store.add_messages(NAMESPACE, items, now=0)
    finally:
        await store.aclose()
        await client.aclose()


def recent_live_sessions(count: int) -> list[str]:
    """The ``count`` most recent sessions that are not archived, as the seed makes them."""
    found: list[str] = []
    n = 0
    while len(found) < count:
        session = organised(n)
        if not session.archived:
            found.append(session.session_id)
        n += 1
    return found


class Organise:
    """The rows, ``rounds`` of each (of ``seconds`` over all rounds, at least 1 s a round),
    over ``cases`` (names of CASES); ``warm``: load each server before its first round."""

    def __init__(
        self,
        seconds: float,
        workdir: Path,
        rounds: int = ROUNDS,
        cases: tuple[str, ...] = tuple(CASES),
        warm: bool = True,
    ) -> None:
        self.rounds = rounds
        self.round_seconds = max(1.0, round(seconds / rounds))
        self.cases = {case: CASES[case] for case in cases}
        self.warm = warm
        self.workdir = workdir
        self.wrk = ensure_wrk()
        self.stacks: list[Stack] = []
        self.ingest_rows: list[Row] = []
        self.notes: list[str] = []
        if self.wrk is None:
            self.notes.append("wrk was not available: load came from an aiohttp client")

    def prepare(self, sessions: int) -> Stack:
        directory = self.workdir / f"organise-{sessions}"
        stack = Stack(sessions, RedisServer(directory / "redis").start(*REDIS_CONFIG))
        try:
            client = stack.redis.client()
            before = used_memory(client)
            started = time.perf_counter()
            seed_organised(client, sessions, int(time.time() * 1000))
            stack.seed_seconds = time.perf_counter() - started
            stack.memory_per_session = (used_memory(client) - before) / sessions
            client.close()
            asyncio.run(mark_reads(stack.redis.url, recent_live_sessions(READ_SESSIONS), READERS))
            stack.service = ServiceServer(stack.redis.url, directory / "service").start()
            for case, query in self.cases.items():
                path = FIRST_PAGE + query
                page = fetch(stack.service.url + path)
                answer = orjson.loads(page)
                stack.totals[case] = (
                    answer["total"],
                    answer.get("total_exact", True),
                    len(answer["sessions"]),
                )
                baseline = BaselineServer(page, directory / f"baseline-{len(stack.baselines)}")
                stack.baselines[case] = baseline.start()
                stack.rows[case] = Row(case, sessions, [])
                if self.warm:
                    warm_up(self.wrk, stack.service.url + path, AUTH)
                    warm_up(self.wrk, baseline.url + path, AUTH)
        except BaseException:
            stack.stop()
            raise
        return stack

    def filter_cases(self, sizes: list[int]) -> None:
        try:
            for sessions in sizes:
                self.stacks.append(self.prepare(sessions))
            for _ in range(self.rounds):
                for case, query in self.cases.items():
                    for stack in self.stacks:
                        assert stack.service is not None
                        path = FIRST_PAGE + query
                        base, row = stack.baselines[case], stack.rows[case]
                        row.bare.append(
                            load_round(self.wrk, base.url + path, base, self.round_seconds, AUTH)
                        )
                        row.rounds.append(
                            load_round(
                                self.wrk,
                                stack.service.url + path,
                                stack.service,
                                self.round_seconds,
                                AUTH,
                            )
                        )
        finally:
            for stack in self.stacks:
                stack.stop()

    def ingest_cases(self) -> None:
        """Single ingest into a service whose namespace has no reader and into one whose
        20 readers have each marked every ingested session read, beside the bare app."""
        directory = self.workdir / "ingest"
        servers: list[RedisServer | ServiceServer | BaselineServer] = []
        try:
            plain = RedisServer(directory / "redis-plain").start(*REDIS_CONFIG)
            servers.append(plain)
            readers = RedisServer(directory / "redis-readers").start(*REDIS_CONFIG)
            servers.append(readers)
            for server in (plain, readers):
                asyncio.run(first_messages(server.url, INGEST_SESSIONS))
            ids = [f"bench{n}" for n in range(INGEST_SESSIONS)]
            asyncio.run(mark_reads(readers.url, ids, READERS))
            counted = readers.client()
            registered = counted.scard(f"cs:{{{NAMESPACE}}}:readers")
            counted.close()
            self.notes.append(
                f"single ingest with readers: {registered} readers registered, each having "
                f"marked all {INGEST_SESSIONS:,} ingested sessions read before the rounds"
            )
            services = {
                "single ingest, no reader": ServiceServer(plain.url, directory / "plain"),
                f"single ingest, {len(READERS)} readers": ServiceServer(
                    readers.url, directory / "readers"
                ),
            }
            for service in services.values():
                servers.append(service.start())
            baseline = BaselineServer(b"{}", directory / "baseline").start()
            servers.append(baseline)
            first = INGEST_FORMAT % 0
            for url in [baseline.url, *(s.url for s in services.values())] if self.warm else []:
                warm_up(self.wrk, url + first, AUTH, ingest_script("warm"), INGEST_FORMAT)
            rows = {case: Row(case, INGEST_SESSIONS, []) for case in services}
            for number in range(self.rounds):
                # Ids of the round's own, sent to every server.
                script = ingest_script(f"r{number}-")
                bare = load_round(
                    self.wrk,
                    baseline.url + first,
                    baseline,
                    self.round_seconds,
                    AUTH,
                    script,
                    INGEST_FORMAT,
                )
                for case, service in services.items():
                    rows[case].bare.append(bare)
                    rows[case].rounds.append(
                        load_round(
                            self.wrk,
                            service.url + first,
                            service,
                            self.round_seconds,
                            AUTH,
                            script,
                            INGEST_FORMAT,
                        )
                    )
            self.ingest_rows = list(rows.values())
        finally:
            for started in reversed(servers):
                started.stop()


def verdict(met: bool) -> str:
    return "yes" if met else "no"


def report(run: Organise) -> str:
    smallest = min(run.stacks, key=lambda s: s.sessions)
    largest = max(run.stacks, key=lambda s: s.sessions)
    lines = [
        f"Medians of {run.rounds} rounds, each round of a case right after one of its bare "
        "baseline (the same bytes); the sizes' rounds take turns, and p50 vs smallest is "
        "the median of the rounds' ratios.",
        "",
        "| case | sessions | total (exact) | on page | req/s | p50 ms | p99 ms | p50 vs "
        f"{smallest.sessions:,} | req/s vs bare (rounds) | CPU/request vs bare (rounds) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in run.cases:
        for stack in run.stacks:
            row = stack.rows[case]
            total, exact, shown = stack.totals[case]
            lines.append(
                f"| {case} | {stack.sessions:,} | {total:,} ({verdict(exact)}) | {shown} "
                f"| {row.requests_per_second:,.0f} | {row.p50_ms:.2f} | {row.p99_ms:.2f} "
                f"| {p50_against(row, smallest.rows[case])} | {spread(row.ratios)} "
                f"| {spread(row.cpu_ratios)} |"
            )
    for row in run.ingest_rows:
        lines.append(
            f"| {row.case} | {row.sessions:,} | | | {row.requests_per_second:,.0f} "
            f"| {row.p50_ms:.2f} | {row.p99_ms:.2f} | - | {spread(row.ratios)} "
            f"| {spread(row.cpu_ratios)} |"
        )
    lines += ["", "| target | reading | met |", "|---|---|---|"]
    for case in run.cases:
        flat_target = FILTER_FLAT if case in FILTER_CASES else COMBINATION_FLAT
        row, small = largest.rows[case], smallest.rows[case]
        pairs = zip(row.rounds, small.rounds, strict=False)
        ratios = [r.p50_ms / s.p50_ms for r, s in pairs if s.p50_ms]
        if ratios:
            lines.append(
                f"| {case}: p50 at {largest.sessions:,} ≤ {flat_target:g} x at "
                f"{smallest.sessions:,} | {median(ratios):.2f} | "
                f"{verdict(median(ratios) <= flat_target)} |"
            )
        if case in FILTER_CASES:
            pooled = [ratio for stack in run.stacks for ratio in stack.rows[case].ratios]
            if pooled:
                lines.append(
                    f"| {case}: req/s ≥ {FILTER_BARE:g} x bare, same bytes (every size's "
                    f"rounds) | {median_of(pooled)} | {verdict(median(pooled) >= FILTER_BARE)} |"
                )
    lines.append(
        f"| Redis memory per session at {largest.sessions:,} ≤ {MEMORY_BYTES} B "
        f"(hash-max-ziplist-value {HASH_VALUE_BYTES}) | {largest.memory_per_session:,.0f} "
        f"| {verdict(largest.memory_per_session <= MEMORY_BYTES)} |"
    )
    for row in run.ingest_rows:
        if row.ratios:
            lines.append(
                f"| {row.case}: req/s ≥ {INGEST_BARE:g} x bare parse-and-201 "
                f"| {median_of(row.ratios)} | {verdict(median(row.ratios) >= INGEST_BARE)} |"
            )
    every = [r for stack in run.stacks for row in stack.rows.values() for r in row.rounds]
    every += [r for row in run.ingest_rows for r in row.rounds]
    errors = sum(result.errors for result in every)
    tools = sorted({result.tool for result in every})
    notes = [
        f"{stack.sessions:,} sessions seeded in {stack.seed_seconds:.1f} s; Redis memory "
        f"{stack.memory_per_session:,.0f} bytes per session (one tag and one user each, "
        f"hash-max-ziplist-value {HASH_VALUE_BYTES})"
        for stack in run.stacks
    ]
    notes += run.notes
    notes.append(
        f"{len(READERS)} readers marked the {READ_SESSIONS} most recent sessions read in "
        "every list stack"
    )
    notes.append(f"load generator: {', '.join(tools)}; non-2xx or socket errors: {errors}")
    return "\n".join([*lines, "", *[f"- {note}" for note in notes]])


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench organise", description=__doc__)
    parser.add_argument("--sizes", default="1000,1000000")
    parser.add_argument("--seconds", type=float, default=9.0, help="per case, over all rounds")
    parser.add_argument("--quick", action="store_true", help="1 k and 10 k sessions")
    args = parser.parse_args(argv)
    sizes = [1000, 10_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    workdir = Path(tempfile.mkdtemp(prefix="chatsessions-bench-organise-"))
    run = Organise(args.seconds, workdir)
    try:
        run.filter_cases(sizes)
        run.ingest_cases()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(report(run))
