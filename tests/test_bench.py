"""The benchmark harness's own parts: sessions it seeds straight into Redis are the ones
the store writes, and it reads wrk's and callgrind's output right."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
import redis
from aiohttp.test_utils import TestServer
from lupa.lua51 import LuaRuntime
from redis.asyncio import Redis

from bench import feed_load, flood, live, noevents, organise, transfer
from bench.__main__ import (
    DISTINCT_PAGES,
    PAGE_CLIENTS,
    Row,
    page_stores,
    read_pages,
    redis_times_per_page,
    redis_usec_per_page,
    report,
    seed_sessions,
)
from bench.baseline import build_app
from bench.instructions import dumped_instructions
from bench.load import LoadResult, _client_load, pages_script, parse_wrk
from bench.seed import CHANNELS, FREQUENT_USER, TAGS, organised, seed_organised
from bench.servers import Managed, RedisServer
from service.store import InvariantChecker, SessionStore, scripts
from service.store.types import ListFilter

from redis_process import RedisProcess

WRK_OUTPUT = """Running 8s test @ http://127.0.0.1:8000/api/sessions?limit=50
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     8.31ms    2.10ms  40.12ms   88.00%
    Req/Sec     3.85k   210.00     4.20k    70.00%
  Latency Distribution
     50%    7.73ms
     75%    9.01ms
     90%   11.20ms
     99%   24.02ms
  30720 requests in 8.00s, 290.12MB read
  Non-2xx or 3xx responses: 3
  Socket errors: connect 0, read 1, write 0, timeout 2
Requests/sec:   3840.00
Transfer/sec:     36.27MB
"""


def test_wrk_output_is_read() -> None:
    result = parse_wrk(WRK_OUTPUT)
    assert result.requests_per_second == 3840.0
    assert result.p50_ms == 7.73
    assert result.p99_ms == 24.02
    assert result.errors == 6


def test_callgrind_totals_are_read(tmp_path: Path) -> None:
    dump = tmp_path / "callgrind.out.1"
    dump.write_text("version: 1\nevents: Ir\nsummary: 0\nfn=(1) main\n0 5\ntotals: 168002330\n")
    assert dumped_instructions(dump) == 168_002_330
    dump.write_text("version: 1\nevents: Ir\nsummary: 0\nfn=(1) main\n")
    assert dumped_instructions(dump) is None


@pytest.mark.real
async def test_seeded_sessions_are_what_the_store_writes(redis_server: RedisProcess) -> None:
    sync = redis.Redis(port=redis_server.port)
    client = Redis(port=redis_server.port)
    store = SessionStore(client, active_window_ms=60_000)
    try:
        sync.flushall()
        now = 1_705_315_500_000
        seed_sessions(sync, 30, now)
        page = await store.list_sessions("default", limit=50, now=now)
        assert page.total == 30
        first = await store.get_session("default", "session_00000000", now=now)
        assert (first.title, first.title_source, first.channel) == (
            "Bench session number 0",
            "auto",
            "web",
        )
        assert (first.message_count, first.active) == (3, True)
        telegram = await store.list_sessions("default", limit=50, now=now, channel="telegram")
        assert telegram.total == 15
        # Index, channel index and records agree, as the store's own writes leave them; the
        # seed stores no messages behind the counts of its records (the list needs none).
        report = await InvariantChecker(client).check("default")
        assert report.sessions == 30
        assert sorted(report.problems) == [
            f"session 'session_{n:08d}' counts 3 messages but stores 0" for n in range(30)
        ]
    finally:
        await store.aclose()
        await client.aclose()
        sync.flushall()
        sync.close()


@pytest.fixture
def seeded(redis_server: RedisProcess) -> Iterator[redis.Redis]:
    """A client of the real server, which holds 200 seeded sessions and no other keys."""
    sync = redis.Redis(port=redis_server.port)
    sync.flushall()
    seed_sessions(sync, 200, 1_705_315_500_000)
    yield sync
    sync.close()


@pytest.mark.real
async def test_redis_time_per_page_comes_from_pages_read_at_once(
    redis_server: RedisProcess, seeded: redis.Redis
) -> None:
    seeded.config_resetstat()
    async with page_stores(redis_server.url) as stores:
        pages = await read_pages(stores, {"channel": "telegram"}, seconds=0.3)
    transactions = int(seeded.info("commandstats")["cmdstat_exec"]["calls"])
    # Eight clients, each its own connection: equal pages do not share a round trip.
    assert pages == transactions > PAGE_CLIENTS
    usec = redis_usec_per_page(seeded)
    assert usec is not None and usec > 0


@pytest.mark.real
async def test_redis_time_per_page_is_read_in_windows_of_their_own(
    redis_server: RedisProcess, seeded: redis.Redis
) -> None:
    # Pages read before the windows, which no window may count.
    seeded.config_resetstat()
    async with page_stores(redis_server.url) as stores:
        before = await read_pages(stores, {}, seconds=0.3)
    readings = await redis_times_per_page(redis_server.url, seeded, {}, windows=3, seconds=0.1)
    assert len(readings) == 3 and all(usec > 0 for usec in readings)
    # Each window starts from reset counters: what is left is the last window's pages.
    assert 0 < int(seeded.info("commandstats")["cmdstat_exec"]["calls"]) < before


def test_distinct_pages_script_never_repeats_a_page_in_flight() -> None:
    # wrk runs the script in its own Lua; lupa (fakeredis's Lua) runs it the same way.
    lua = LuaRuntime()
    lua.execute("wrk = {format = function(method, path) return method .. ' ' .. path end}")
    lua.execute(pages_script("/api/sessions?limit=50", DISTINCT_PAGES))
    request = lua.globals().request
    paths = [request() for _ in range(DISTINCT_PAGES + 1)]
    assert paths[0] == "GET /api/sessions?limit=50&offset=1"
    assert len(set(paths[:DISTINCT_PAGES])) == DISTINCT_PAGES
    assert paths[DISTINCT_PAGES - 1] == "GET /api/sessions?limit=50&offset=0"
    assert paths[DISTINCT_PAGES] == paths[0]


def test_server_cpu_time_is_read_from_proc() -> None:
    spinner = Managed()
    spinner.process = subprocess.Popen(
        [sys.executable, "-c", SPIN_THEN_SLEEP], stdout=subprocess.PIPE
    )
    try:
        assert spinner.process.stdout is not None
        assert spinner.process.stdout.readline() == b"spun\n"
        # It spun for 0.3 s of CPU and now sleeps: the count holds that, and no more.
        first = spinner.cpu_seconds()
        assert 0.25 <= first < 2.0
        assert spinner.cpu_seconds() - first < 0.05
    finally:
        spinner.stop()


SPIN_THEN_SLEEP = """
import sys, time
start = time.process_time()
while time.process_time() - start < 0.3:
    pass
print("spun", flush=True)
time.sleep(30)
"""


def test_each_round_is_compared_with_the_bare_round_run_beside_it() -> None:
    def result(rps: float) -> LoadResult:
        return LoadResult(rps, 1.0, 2.0, 0, "wrk", cpu_us_per_request=1e6 / rps)

    first = Row("first page", 1000, [result(600), result(480)], [result(1000), result(800)])
    cursor = Row("cursor page", 1000, [result(450)], [result(500)], [33.0, 41.5, 30.25])
    assert first.ratios == [0.6, 0.6]
    assert first.cpu_ratios == pytest.approx([0.6, 0.6])

    # A worker that used 0.9 of a core in a round of 500 requests a second.
    waiting = Row("channel page", 1000, [LoadResult(500, 1.0, 2.0, 0, "wrk", 1800.0)])
    assert first.busy == pytest.approx([1.0, 1.0])
    assert waiting.busy == pytest.approx([0.9])
    assert Row("deep offset", 1000, [LoadResult(500, 1.0, 2.0, 0, "wrk")]).busy == []

    distinct = Row("distinct pages", 1000, [result(300)], [result(1000)])
    harness = SimpleNamespace(rows=[first, cursor, waiting, distinct], notes=[])
    table = report(harness)  # type: ignore[arg-type]
    assert "| first page | 1,000 | 540 |" in table
    # Redis time per page: the median of the windows, with the lowest and highest.
    assert (
        "| cursor page | 1,000 | 450 | 1.00 | 2.00 | 33.0 (30.2-41.5) | 1.00 | 0.90 (0.90-0.90) |"
        in table
    )
    assert "| channel page | 1,000 | 500 | 1.00 | 2.00 | - | 1.00 | - | - | 0.90 |" in table
    # The list's one figure pools the targeted cases' rounds (0.6, 0.6 and 0.9), not
    # distinct pages'.
    assert (
        "List throughput against bare, the median of all 3 rounds of first page, deep offset, "
        "cursor page, channel page: 0.60 (the rows' medians 0.60-0.90, 2 of 2 at 0.6 or more)"
    ) in table
    # One baseline line per page size, over the bare rounds of every case of that size.
    (bare_line,) = [line for line in table.splitlines() if line.startswith("| bare")]
    assert bare_line.startswith("| bare aiohttp, same bytes as the 1,000 first page | | 900 |")
    assert bare_line.endswith("| 1.00 | 1.00 | 1.00 |")


def test_latency_at_a_size_is_compared_round_by_round_with_the_smallest() -> None:
    def rounds(*p50s: float) -> list[LoadResult]:
        return [LoadResult(1000, p50, 2 * p50, 0, "wrk") for p50 in p50s]

    # The host slowed down in the second round and sped up in the third; both sizes
    # felt it, and each round's pair reads 1.1. In the fourth, 1 M alone met a spike.
    small = Row("first page", 1000, rounds(1.0, 2.0, 0.5, 1.0))
    large = Row("first page", 1_000_000, rounds(1.1, 2.2, 0.55, 3.0))
    harness = SimpleNamespace(rows=[small, large], notes=[])
    table = report(harness)  # type: ignore[arg-type]
    assert "| first page | 1,000 | 1,000 | 1.00 | 2.00 | - | 1.00 |" in table
    # The medians' ratio would read 1.65.
    assert "| first page | 1,000,000 | 1,000 | 1.65 | 3.30 | - | 1.10 |" in table


async def test_the_fallback_client_gets_and_posts_where_the_harness_says() -> None:
    server = TestServer(build_app(b'{"sessions":[]}'))
    await server.start_server()
    try:
        url = f"http://127.0.0.1:{server.port}"
        listed = await _client_load(url + "/api/sessions?limit=50", 0.3, {}, None, 10)
        path = "/api/sessions/bench%d/messages"
        posted = await _client_load(url + path % 0, 0.3, {}, path, 10)
    finally:
        await server.close()
    # The baseline answers only the service's list and ingest paths: any miss is an error.
    assert listed.requests_per_second > 0 and listed.errors == 0
    assert posted.requests_per_second > 0 and posted.errors == 0


@pytest.mark.real
def test_the_flood_row_measures_a_alone_and_while_b_floods(tmp_path: Path) -> None:
    result = flood.run(rounds=1, seconds=0.5, workdir=tmp_path)
    fields = result.fields()
    assert set(fields) == {
        "a_alone_p99_ms",
        "a_flooded_p99_ms",
        "ratio",
        "a_errors",
        "a_requests",
        "b_statuses",
    }
    assert result.alone.requests > 0 and result.flooded.requests > 0
    assert fields["a_errors"] == 0
    assert fields["ratio"] == fields["a_flooded_p99_ms"] / fields["a_alone_p99_ms"]
    # b flooded for real: its requests were answered, by the service, not the network.
    assert sum(result.b_statuses.values()) > 0 and 0 not in result.b_statuses
    table = flood.report(result)
    assert "| alone | " in table and "| while b floods search and history" in table
    assert "a's errors: 0 (target 0)" in table


@pytest.mark.real
def test_the_transfer_rows_move_every_message_both_ways(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis").start()
    try:
        rates = asyncio.run(transfer.measure(server.url, tmp_path, sessions=6, messages=7))
    finally:
        server.stop()
    assert [(r.case, r.messages) for r in rates] == [
        ("export", 42),
        ("import ndjson", 42),
        ("import pocketpaw", 42),
    ]
    assert all(r.seconds > 0 for r in rates)
    rows = transfer.table(rates).splitlines()[2:]
    assert [row.split(" | ")[0] for row in rows] == [
        "| export",
        "| import ndjson",
        "| import pocketpaw",
    ]


@pytest.mark.real
async def test_organised_seed_is_what_the_scripts_write(redis_server: RedisProcess) -> None:
    sync = redis.Redis(port=redis_server.port)
    client = Redis(port=redis_server.port)
    store = SessionStore(client, active_window_ms=60_000)
    now = 1_705_315_500_000
    sessions = [organised(n) for n in range(300)]
    try:
        sync.flushall()
        seed_organised(sync, 300, now)
        # Every sorted set, registry and counter agrees with the hashes, as the scripts
        # leave them; the seed stores no messages behind its records' counts.
        report = await InvariantChecker(client).check("default")
        assert report.sessions == 300
        assert {p.split("'")[2] for p in report.problems} == {" counts 3 messages but stores 0"}
        live = [s for s in sessions if not s.archived]
        filters = {
            ListFilter(tag="topic3"): [s for s in live if s.tag == "topic3"],
            ListFilter(archived=True): [s for s in sessions if s.archived],
            ListFilter(pinned=True): [s for s in live if s.pinned],
            ListFilter(user=FREQUENT_USER): [s for s in live if s.user == FREQUENT_USER],
        }
        for query, expected in filters.items():
            assert expected, query
            page = await store.list_sessions("default", limit=500, now=now, filters=query)
            assert page.total == len(expected)
            ids = [item["id"] for item in orjson.loads(page.json())["sessions"]]
            assert ids == [s.session_id for s in expected]
        both = await store.list_sessions(
            "default", limit=500, now=now, channel="telegram", filters=ListFilter(tag="topic3")
        )
        matched = [s for s in live if s.tag == "topic3" and s.channel == "telegram"]
        assert [i["id"] for i in orjson.loads(both.json())["sessions"]] == [
            s.session_id for s in matched
        ]
        # The mix every size holds: a tag and a channel together match 1 % of sessions.
        assert sum(s.tag == "topic3" and s.channel == "telegram" for s in sessions) == 3
        counts = await store.counts("default", now=now, hours=0, reader=None)
        assert set(counts.channels) == set(CHANNELS) and set(counts.tags) == set(TAGS)
    finally:
        await store.aclose()
        await client.aclose()
        sync.flushall()
        sync.close()


@pytest.mark.real
def test_the_organise_rows_measure_filters_memory_and_ingest(tmp_path: Path) -> None:
    run = organise.Organise(
        1.0, tmp_path, rounds=1, cases=("tag page", "tag + channel page"), warm=False
    )
    run.filter_cases([100, 300])
    run.ingest_cases()
    assert [s.sessions for s in run.stacks] == [100, 300]
    for stack in run.stacks:
        assert set(stack.rows) == {"tag page", "tag + channel page"}
        for row in stack.rows.values():
            assert len(row.rounds) == len(row.bare) == 1
            assert row.rounds[0].requests_per_second > 0 and row.rounds[0].errors == 0
        # The tag page is read by rank (exact total); the combination is a bounded walk.
        assert stack.totals["tag page"][1] and not stack.totals["tag + channel page"][1]
        assert stack.memory_per_session > 0
        # Every process of the stack was stopped by its pid.
        assert stack.service is not None and stack.service.process is None
    assert [row.case for row in run.ingest_rows] == [
        "single ingest, no reader",
        "single ingest, 20 readers",
    ]
    assert all(row.rounds[0].errors == 0 for row in run.ingest_rows)
    assert "20 readers registered" in " ".join(run.notes)
    table = organise.report(run)
    assert "| tag + channel page: p50 at 300 ≤ 2 x at 100 |" in table
    assert "| Redis memory per session at 300 ≤ 600 B (hash-max-ziplist-value 256) |" in table
    assert "non-2xx or socket errors: 0" in table


@pytest.mark.real
def test_the_live_rows_measure_event_cost_304_and_counts(tmp_path: Path) -> None:
    run = live.LiveRun(1.0, tmp_path, rounds=2, warm=False)
    run.event_cost()
    run.not_modified()
    run.counts([100, 300])
    assert [row.case for row in run.rows] == [
        "single ingest, event appended",
        "single ingest, no event (scripts variant)",
        "304 (If-None-Match, current tag)",
    ]
    for row in [*run.rows, *run.counts_rows]:
        assert len(row.rounds) == len(row.bare) == 2
        assert all(r.requests_per_second > 0 and r.errors == 0 for r in row.rounds)
    assert len(run.event_ratios) == 2 and len(run.not_modified_vs_page) == 2
    # The scripts variant wrote its messages and no event; the service wrote both.
    (events,) = [note for note in run.notes if note.startswith("events in the stream")]
    assert events.endswith(", 0 in the scripts variant")
    assert not events.startswith("events in the stream after the ingest rounds: 0 ")
    assert "the tag answered 304 after 2 of 2 rounds" in " ".join(run.notes)
    assert [row.sessions for row in run.counts_rows] == [100, 300]
    table = live.report(run)
    assert "| counts p50 at 300 ≤ 1.25 x at 100 |" in table
    assert "non-2xx or socket errors: 0" in table


def test_the_scripts_variant_leaves_out_only_the_event(monkeypatch: pytest.MonkeyPatch) -> None:
    # The variant is the service's own scripts with a silent emit defined after the real
    # one: the event's XADD and version SET are left out, and nothing else differs.
    with_events = scripts.assembled(scripts._source("ingest.lua"))
    monkeypatch.setattr(scripts, "_source", noevents.without_events)
    without = scripts.assembled(scripts._source("ingest.lua"))
    assert without.count(noevents.SILENT) == 1
    assert without.replace(noevents.SILENT, "") == with_events


def test_a_subscriber_counts_events_and_notes_message_ids_across_chunks() -> None:
    frames = b"".join(
        b'id: 17-%d\nevent: session.updated\ndata: {"session":{"id":"feed1"},'
        b'"message":{"id":"w-%d","role":"user"}}\n\n' % (n, n)
        for n in range(3)
    )
    frames += b": heartbeat\n\n"
    frames += b'id: 18-0\nevent: session.deleted\ndata: {"session":{"id":"x"}}\n\n'
    sampled = feed_load.Stream(sampled=True, counted=True)
    plain = feed_load.Stream(sampled=False, counted=True)
    uncounted = feed_load.Stream(sampled=False, counted=False)
    # Cut anywhere, even inside a message id: each event is counted once, when whole.
    for stream in (sampled, plain, uncounted):
        for n, start in enumerate(range(0, len(frames), 7)):
            stream.take(frames[start : start + 7], float(n))
        assert stream.received == stream.event_bytes == len(frames)
    assert sampled.events == plain.events == 4
    assert uncounted.events == 0
    assert [message_id for message_id, _ in sampled.arrivals] == ["w-0", "w-1", "w-2"]
    assert plain.arrivals == uncounted.arrivals == []
    # The time noted is the chunk's that completed the event.
    cut = frames.index(b"\n\n") + 2
    assert sampled.arrivals[0][1] == (cut - 1) // 7


def chunked(*pieces: bytes) -> bytes:
    return b"".join(b"%x\r\n%b\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


async def test_a_subscription_decodes_a_chunked_answer_cut_anywhere() -> None:
    frames = [
        b'id: 17-%d\nevent: session.updated\ndata: {"session":{"id":"feed1"},'
        b'"message":{"id":"w-%d","role":"user"}}\n\n' % (n, n)
        for n in range(5)
    ]
    # Batches of frames, a heartbeat comment between them, a chunk extension.
    body = chunked(frames[0] + frames[1], b": ping\n\n", frames[2], frames[3] + frames[4])
    body = body.replace(b"\r\n", b";x=1\r\n", 1)
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + body
    )
    for size in (1, 2, 3, 7, 64, len(answer)):
        sampled = feed_load.Stream(sampled=True, counted=True)
        uncounted = feed_load.Stream(sampled=False, counted=False)
        for stream in (sampled, uncounted):
            subscription = feed_load.Subscription(stream, b"", lambda: False)
            for n, start in enumerate(range(0, len(answer), size)):
                subscription.data_received(answer[start : start + size])
                if n == 0 and size < 40:
                    assert not subscription.answered.done()
            assert subscription.answered.result() is None
            # The last chunk arrived before the reader was told to stop.
            assert stream.ended_early
            assert stream.received == len(answer)
            # The frames' bytes, not the framing's nor the comment's.
            assert stream.event_bytes == sum(map(len, frames)), size
        assert sampled.events == 5
        assert [message_id for message_id, _ in sampled.arrivals] == [f"w-{n}" for n in range(5)]


async def test_a_subscription_reports_an_answer_other_than_a_chunked_200() -> None:
    stream = feed_load.Stream(sampled=False, counted=False)
    subscription = feed_load.Subscription(stream, b"", lambda: False)
    subscription.data_received(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 11\r\n\r\n{}")
    # The rest of its body is no chunk framing.
    subscription.data_received(b'\n{"a":1}\n')
    assert subscription.answered.result() == "http/1.1 401 unauthorized"
    assert stream.event_bytes == 0


async def test_the_writer_takes_answers_in_order_however_they_arrive() -> None:
    answered: list[tuple[str, int]] = []
    poster = feed_load.Poster(
        lambda _, message_id, status, at: answered.append((message_id, status))
    )
    poster.waiting.extend(["a", "b", "c"])
    answers = (
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        b'HTTP/1.1 503 Service Unavailable\r\nContent-Length: 14\r\n\r\n{"detail":"x"}'
        b"HTTP/1.1 201 Created\r\ncontent-length: 0\r\n\r\n"
    )
    for start in range(0, len(answers), 5):
        poster.data_received(answers[start : start + 5])
    assert answered == [("a", 201), ("b", 503), ("c", 201)]
    assert not poster.waiting


@pytest.mark.real
def test_the_feed_row_joins_each_write_to_its_event(tmp_path: Path) -> None:
    run = live.LiveRun(1.0, tmp_path, rounds=1, warm=False)
    result = live.feed_row(run, subscribers=20, rate=100, seconds=1.0)
    assert (result.connected, result.ended_early) == (20, 0)
    assert result.writes == 100 and result.write_statuses == {"201": 100}
    # Every subscriber got every write's event (the parsed one counted them, the others'
    # bytes are as many); the sampled one noted each against its ack.
    assert result.events_min == result.events_max == 100
    assert result.event_bytes_min == result.event_bytes_max > 100 * 400
    assert result.sampled == 1 and len(result.latencies_ms) == 100
    assert result.coverage == 1.0 and result.complete
    # The cores of every process the writer watched, and of the whole machine.
    assert result.service_cores > 0 and result.writer_cores > 0 and result.host_cores > 0
    assert len(result.without) == len(result.with_subscribers) == len(result.dropped) == 1
    assert result.without[0].errors == result.with_subscribers[0].errors == 0
    table = live.report(run)
    assert "| feed: write ack to event arrival p99 ≤ 50 ms (20 subscribers, 100 writes/s" in table
    assert "| feed: writes' req/s with subscribers ≥ 0.8 x without" in table


@pytest.mark.real
def test_narrowed_subscribers_hear_only_their_own_session(tmp_path: Path) -> None:
    run = live.LiveRun(1.0, tmp_path, rounds=1, warm=False)
    # 20 subscribers, each following one of the writes' 1,000 sessions: 100 writes go to
    # sessions 0-99, so each subscriber hears exactly one event.
    result = live.feed_row(run, subscribers=20, rate=100, seconds=1.0, narrow=True)
    assert result.writes == 100 and result.ended_early == 0
    assert result.events_min == result.events_max == 1
    assert result.expected == 1 and len(result.latencies_ms) == 1 and result.coverage == 1.0
    assert "(20 narrowed subscribers, 100 writes/s" in live.report(run)
