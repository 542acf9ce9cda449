"""python -m bench flood [--rounds 3] [--seconds 5] [--workers 1]

One namespace flooding expensive routes must not starve the others (SPEC §3 "Fair
sharing", issue 19 item 1). This row measures namespace a's list p99 alone, then again
while namespace b floods search and history from FLOOD_CLIENTS clients, in rounds that
take turns (alone, flooded, alone, …) so that the host's own load falls on both.

- a holds A_SESSIONS sessions; it asks for the first page of 50 at a steady rate
  (A_RATE requests a second), each request sent when due and timed from then, so that
  a's latency is what one request meets, and a stall counts in every request it holds.
- b holds B_SESSIONS sessions of B_MESSAGES messages of ``"Ж" * 1000`` (2 kB of UTF-8
  each, where a search folds every byte), and LONG_SESSIONS sessions of LONG_MESSAGES
  such messages, whose history pages of 500 are 1 MB each.
- b's clients, half searching for a word no message holds (so that a search reads all
  it may) and half reading history pages of 500, send their next request as soon as
  the last is answered, whatever it was (a 429 included): a hostile tenant.

The flood runs in a process of its own, and a's clients in the harness's, neither on
the service's core. Everything listens on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median
from typing import Any

import aiohttp
import orjson
import redis.asyncio

from service.models import MessageIn
from service.store import SessionStore

from .__main__ import ACTIVE_WINDOW_MS, seed_sessions
from .servers import RedisServer, ServiceServer

A_SESSIONS = 1000
B_SESSIONS = 200
B_MESSAGES = 10
LONG_SESSIONS = 4
LONG_MESSAGES = 500
CONTENT = "Ж" * 1000
FLOOD_CLIENTS = 8
# a's requests a second, and the connections they may use at once.
A_RATE = 200
A_CONNECTIONS = 256
A_PATH = "/api/sessions?limit=50"
# No stored message or title holds it: a search reads as much as it may.
SEARCH_PATH = "/api/sessions/search?q=%D1%89%D1%89&limit=20"
HISTORY_LIMIT = 500
TOKENS = {
    "a": "cs_bench_flood_a_0123456789_abcdefghijkl",
    "b": "cs_bench_flood_b_0123456789_abcdefghijkl",
}
# The flood goes on this long past a's measured window, so that it covers all of it.
FLOOD_MARGIN = 1.0
# A guard against a hung request; never part of a figure.
REQUEST_GUARD = 30.0
TARGET_RATIO = 2.0


class FloodService(ServiceServer):
    """The service with one token for namespace a and one for b."""

    def environment(self) -> dict[str, str]:
        entries = [
            {
                "name": f"flood-{namespace}",
                "sha256": hashlib.sha256(token.encode()).hexdigest(),
                "scopes": ["read", "write"],
                "namespace": namespace,
            }
            for namespace, token in TOKENS.items()
        ]
        return {**super().environment(), "CHATSESSIONS_TOKENS": orjson.dumps(entries).decode()}


def auth(namespace: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[namespace]}"}


@dataclass
class Phase:
    """a's requests in one kind of phase, over every round."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    # Each round's p99, in the order the rounds ran.
    round_p99s: list[float] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.latencies_ms)

    @property
    def p50_ms(self) -> float:
        return percentile(self.latencies_ms, 0.50)

    @property
    def p99_ms(self) -> float:
        return percentile(self.latencies_ms, 0.99)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(len(ordered) * fraction + 0.5) - 1))]


@dataclass
class FloodResult:
    alone: Phase
    flooded: Phase
    # b's answers by status over every flooded phase (0: no answer).
    b_statuses: Counter[int]
    rounds: int
    seconds: float
    workers: int

    @property
    def ratio(self) -> float:
        """a's list p99 while b floods, against alone (pooled over the rounds)."""
        return self.flooded.p99_ms / self.alone.p99_ms

    @property
    def round_ratios(self) -> list[float]:
        pairs = zip(self.flooded.round_p99s, self.alone.round_p99s, strict=True)
        return [flooded / alone for flooded, alone in pairs if alone]

    @property
    def a_errors(self) -> int:
        return self.alone.errors + self.flooded.errors

    def fields(self) -> dict[str, Any]:
        return {
            "a_alone_p99_ms": self.alone.p99_ms,
            "a_flooded_p99_ms": self.flooded.p99_ms,
            "ratio": self.ratio,
            "a_errors": self.a_errors,
            "a_requests": self.alone.requests + self.flooded.requests,
            "b_statuses": dict(self.b_statuses),
        }


async def seed(url: str) -> list[str]:
    """a's sessions and b's; returns b's long sessions' ids."""
    sync = redis.Redis.from_url(url)
    try:
        seed_sessions(sync, A_SESSIONS, int(time.time() * 1000), namespace="a")
    finally:
        sync.close()
    client = redis.asyncio.Redis.from_url(url)
    store = SessionStore(client, active_window_ms=ACTIVE_WINDOW_MS)
    start = 1_700_000_000_000
    items = [
        (f"b{n:04d}", MessageIn(f"b{n}-{m}", "user", CONTENT, start + n * 100 + m, None, "web"))
        for n in range(B_SESSIONS)
        for m in range(B_MESSAGES)
    ]
    long_ids = [f"long{n}" for n in range(LONG_SESSIONS)]
    items += [
        (session_id, MessageIn(f"{session_id}-{m}", "user", CONTENT, start + m, None, "web"))
        for session_id in long_ids
        for m in range(LONG_MESSAGES)
    ]
    try:
        for first in range(0, len(items), 1000):
            results = await store.add_messages("b", items[first : first + 1000], now=start)
            failed = [r for r in results if isinstance(r, Exception)]
            if failed:
                raise RuntimeError(f"seeding b failed: {failed[0]!r}")
    finally:
        await store.aclose()
        await client.aclose()
    return long_ids


async def measure_a(url: str, seconds: float, phase: Phase) -> None:
    """a's list, A_RATE requests a second for ``seconds``, each sent when it is due
    whether or not the ones before it were answered (a slow answer does not hold back
    the next request, so a stall shows in every request it delays), and timed from
    when it was due."""
    latencies: list[float] = []
    loop = asyncio.get_running_loop()

    async def one(session: aiohttp.ClientSession, due: float) -> None:
        try:
            async with asyncio.timeout(REQUEST_GUARD):
                async with session.get(url + A_PATH, headers=auth("a")) as response:
                    await response.read()
                    ok = response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        latencies.append((loop.time() - due) * 1000)
        phase.errors += not ok

    connector = aiohttp.TCPConnector(limit=A_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        first = loop.time()
        sent: list[asyncio.Task[None]] = []
        for n in range(round(seconds * A_RATE)):
            due = first + n / A_RATE
            await asyncio.sleep(max(0.0, due - loop.time()))
            sent.append(asyncio.create_task(one(session, due)))
        await asyncio.gather(*sent)
    phase.latencies_ms += latencies
    phase.round_p99s.append(percentile(latencies, 0.99))


async def flood(url: str, seconds: float, long_ids: list[str]) -> dict[int, int]:
    """b's clients, half searching and half reading history, each sending its next
    request when the last is answered; b's answers by status (0: no answer)."""
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + seconds
    histories = [
        f"/api/sessions/{session_id}/messages?limit={HISTORY_LIMIT}" for session_id in long_ids
    ]
    histories += [
        f"/api/sessions/b{n:04d}/messages?limit={HISTORY_LIMIT}" for n in range(B_SESSIONS)
    ]

    async def client(number: int, session: aiohttp.ClientSession) -> None:
        sent = 0
        while time.monotonic() < deadline:
            if number % 2:
                path = histories[(sent * FLOOD_CLIENTS + number) % len(histories)]
            else:
                path = SEARCH_PATH
            sent += 1
            try:
                async with asyncio.timeout(REQUEST_GUARD):
                    async with session.get(url + path, headers=auth("b")) as response:
                        await response.read()
                        statuses[response.status] += 1
            except (aiohttp.ClientError, TimeoutError):
                statuses[0] += 1

    connector = aiohttp.TCPConnector(limit=FLOOD_CLIENTS)
    async with aiohttp.ClientSession(connector=connector) as session:
        print("flooding", flush=True)
        await asyncio.gather(*(client(n, session) for n in range(FLOOD_CLIENTS)))
    return dict(statuses)


FLOOD_PROCESS = (
    "import asyncio, sys, orjson\n"
    "from bench.flood import flood\n"
    "statuses = asyncio.run(flood(*orjson.loads(sys.argv[1])))\n"
    "print(orjson.dumps(statuses, option=orjson.OPT_NON_STR_KEYS).decode(), flush=True)\n"
)


async def flooded_phase(
    url: str, seconds: float, long_ids: list[str], phase: Phase
) -> Counter[int]:
    """a measured while a separate process floods as b; b's answers by status."""
    payload = orjson.dumps([url, seconds + FLOOD_MARGIN, long_ids]).decode()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FLOOD_PROCESS, payload,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        async with asyncio.timeout(REQUEST_GUARD):
            started = await process.stdout.readline()
        if started.strip() != b"flooding":
            raise RuntimeError(f"the flood did not start: {started!r}")
        await measure_a(url, seconds, phase)
        async with asyncio.timeout(REQUEST_GUARD + seconds):
            summary = await process.stdout.readline()
            await process.wait()
        if not summary:
            raise RuntimeError(f"the flood ended without its summary (exit {process.returncode})")
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return Counter({int(status): count for status, count in orjson.loads(summary).items()})


async def run_rounds(
    url: str, rounds: int, seconds: float, long_ids: list[str], workers: int
) -> FloodResult:
    result = FloodResult(Phase(), Phase(), Counter(), rounds, seconds, workers)
    # Not measured: the first requests of a process just started.
    await measure_a(url, min(1.0, seconds), Phase())
    for _ in range(rounds):
        await measure_a(url, seconds, result.alone)
        result.b_statuses += await flooded_phase(url, seconds, long_ids, result.flooded)
    return result


def run(
    rounds: int = 3, seconds: float = 5.0, workers: int = 1, workdir: Path | None = None
) -> FloodResult:
    """Starts Redis and the service, seeds, measures, and stops both."""
    own = workdir is None
    directory = workdir or Path(tempfile.mkdtemp(prefix="chatsessions-flood-"))
    redis_server = RedisServer(directory / "redis").start()
    service: FloodService | None = None
    try:
        long_ids = asyncio.run(seed(redis_server.url))
        service = FloodService(redis_server.url, directory / "service", workers=workers)
        service.start()
        return asyncio.run(run_rounds(service.url, rounds, seconds, long_ids, workers))
    finally:
        if service is not None:
            service.stop()
        redis_server.stop()
        if own:
            shutil.rmtree(directory, ignore_errors=True)


def report(result: FloodResult) -> str:
    b = result.b_statuses
    answered = ", ".join(
        f"{count:,} x {status or 'no answer'}" for status, count in sorted(b.items())
    )
    return "\n".join(
        [
            f"Namespace a's list (first page of 50, {A_SESSIONS:,} sessions, {A_RATE} "
            f"requests/s, each timed from when it was due), {result.rounds} rounds of "
            f"{result.seconds:g} s each, alone and while b floods; {result.workers} worker(s).",
            "",
            "| a's list | requests | p50 ms | p99 ms | errors |",
            "|---|---:|---:|---:|---:|",
            f"| alone | {result.alone.requests:,} | {result.alone.p50_ms:.2f} "
            f"| {result.alone.p99_ms:.2f} | {result.alone.errors} |",
            f"| while b floods search and history from {FLOOD_CLIENTS} clients "
            f"| {result.flooded.requests:,} | {result.flooded.p50_ms:.2f} "
            f"| {result.flooded.p99_ms:.2f} | {result.flooded.errors} |",
            "",
            f"- p99 while flooded / alone: {result.ratio:.2f} (target at most {TARGET_RATIO:g}); "
            f"the rounds' ratios {', '.join(f'{r:.2f}' for r in result.round_ratios)} "
            f"(median {median(result.round_ratios) if result.round_ratios else float('nan'):.2f})",
            f"- a's errors: {result.a_errors} (target 0)",
            f"- b's answers: {answered}",
            f"- b: {B_SESSIONS} sessions of {B_MESSAGES} messages and {LONG_SESSIONS} of "
            f"{LONG_MESSAGES}, each message {len(CONTENT)} x 'Ж'; half of b's clients search "
            f"for a word no message holds, half read history pages of {HISTORY_LIMIT}",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench flood", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="per phase of a round")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    result = run(args.rounds, args.seconds, args.workers)
    print(report(result))


if __name__ == "__main__":
    main()
