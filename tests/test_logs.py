"""The access line: its text, its milliseconds to two places, its time of day."""

from __future__ import annotations

import io
import re
import time

import orjson
import pytest

from service.logs import AccessLog

LINE = re.compile(
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d) INFO chatsessions\.access (\S+) (\S+) (\d{3}) (\d+\.\d\d)ms"
)


def text_lines(stream: io.StringIO) -> list[tuple[str, ...]]:
    lines = stream.getvalue().splitlines()
    matches = [LINE.fullmatch(line) for line in lines]
    assert all(matches), lines
    return [m.groups() for m in matches if m]


@pytest.mark.parametrize(
    ("ms", "written"),
    [
        (0.0, "0.00"),
        (0.004, "0.00"),
        (0.006, "0.01"),
        (1.2345, "1.23"),
        (9.999, "10.00"),
        (12.5, "12.50"),
        (1234.567, "1234.57"),
    ],
)
def test_milliseconds_are_written_to_two_places(ms: float, written: str) -> None:
    stream = io.StringIO()
    AccessLog("text", stream).record("GET", "/api/sessions", 200, ms)
    assert text_lines(stream)[0][4] == written


def test_each_line_names_its_own_method_route_and_status() -> None:
    stream = io.StringIO()
    log = AccessLog("text", stream)
    asked = [
        ("GET", "/api/sessions", 200),
        ("POST", "/api/sessions/{session_id}/messages", 201),
        ("GET", "/api/sessions", 200),
        ("GET", "/api/sessions", 422),
        ("DELETE", "/api/sessions/{session_id}", 404),
    ]
    for method, route, status in asked:
        log.record(method, route, status, 1.0)
    assert [line[1:4] for line in text_lines(stream)] == [
        (method, route, str(status)) for method, route, status in asked
    ]


def test_the_time_of_day_follows_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two instants a second apart, seen through the clock the log reads.
    first = 1_764_460_800.25
    clock = iter([first, first + 0.5, first + 1.0, first + 1.5])
    monkeypatch.setattr(time, "time", lambda: next(clock))
    stream = io.StringIO()
    log = AccessLog("text", stream)
    for _ in range(4):
        log.record("GET", "/api/sessions", 200, 1.0)
    stamps = [line[0] for line in text_lines(stream)]
    expected = [
        time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(int(first + step)))
        for step in (0, 0.5, 1.0, 1.5)
    ]
    assert stamps == expected
    assert stamps[0] != stamps[2]


def test_json_lines_carry_the_same_fields() -> None:
    stream = io.StringIO()
    AccessLog("json", stream).record("POST", "/api/messages", 207, 3.14159)
    entry = orjson.loads(stream.getvalue())
    assert entry["message"] == "POST /api/messages 207 3.14ms"
    assert (entry["method"], entry["route"], entry["status"], entry["ms"]) == (
        "POST",
        "/api/messages",
        207,
        3.14,
    )
    assert entry["logger"] == "chatsessions.access"
