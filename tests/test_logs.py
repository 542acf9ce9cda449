"""The access line: its text, its milliseconds to two places, its time of day; and no
secret in any line logging writes."""

from __future__ import annotations

import io
import logging
import re
import time
from collections.abc import Iterator

import orjson
import pytest
from aiohttp.http_exceptions import BadHttpMessage, LineTooLong
from aiohttp.web import RequestPayloadError

from service.auth import new_token
from service.logs import AccessLog, JsonFormatter, redact

LINE = re.compile(
    r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d) INFO chatsessions\.access (\S+) (\S+) (\d{3}) (\d+\.\d\d)ms"
)


def text_lines(stream: io.StringIO) -> list[tuple[str, ...]]:
    lines = stream.getvalue().splitlines()
    matches = [LINE.fullmatch(line) for line in lines]
    assert all(matches), lines
    return [m.groups() for m in matches if m]


@pytest.mark.parametrize(
    ("nanoseconds", "written"),
    [
        (0, "0.00"),
        (4_999, "0.00"),
        (5_000, "0.01"),
        (1_234_500, "1.23"),
        (9_994_999, "9.99"),
        (9_995_000, "10.00"),
        (12_500_000, "12.50"),
        (1_234_567_000, "1234.57"),
    ],
)
def test_milliseconds_are_written_to_two_places(nanoseconds: int, written: str) -> None:
    stream = io.StringIO()
    AccessLog("text", stream).record("GET", "/api/sessions", 200, nanoseconds)
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
        log.record(method, route, status, 1_000_000)
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
        log.record("GET", "/api/sessions", 200, 1_000_000)
    stamps = [line[0] for line in text_lines(stream)]
    expected = [
        time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(int(first + step)))
        for step in (0, 0.5, 1.0, 1.5)
    ]
    assert stamps == expected
    assert stamps[0] != stamps[2]


def test_json_lines_carry_the_same_fields() -> None:
    stream = io.StringIO()
    AccessLog("json", stream).record("POST", "/api/messages", 207, 3_141_590)
    entry = orjson.loads(stream.getvalue())
    assert entry["message"] == "POST /api/messages 207 3.14ms"
    assert (entry["method"], entry["route"], entry["status"], entry["ms"]) == (
        "POST",
        "/api/messages",
        207,
        3.14,
    )
    assert entry["logger"] == "chatsessions.access"


# --- redaction ------------------------------------------------------------------------------

TOKEN = new_token()


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {TOKEN}",
        f"b'Authorization: Bearer {TOKEN}\\x01'",
        f"authorization:{TOKEN}",
        f"Proxy-Authorization: Basic {TOKEN[3:]}",
        f"headers {{'Authorization': 'Bearer {TOKEN}'}}",
        f"bearer\t{TOKEN[3:]}",
        f"a token {TOKEN} in passing",
        f"a token cut short: {TOKEN[:12]}...",
        f"/{TOKEN}aaaa",
    ],
)
def test_redact_removes_the_secret(text: str) -> None:
    cleaned = redact(text)
    assert TOKEN[3:13] not in cleaned
    assert TOKEN[:12] not in cleaned
    assert "[redacted]" in cleaned


@pytest.mark.parametrize(
    "text",
    [
        "GET /api/sessions 200 1.20ms",
        "unhandled error on POST /api/sessions/abc/messages",
        "redis unavailable: Timeout reading from 127.0.0.1:6379",
        "docs_and_metrics: 12 discs_total",
    ],
)
def test_redact_leaves_other_text_alone(text: str) -> None:
    assert redact(text) == text


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    """A logger of its own, writing through a handler that knows nothing of secrets."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("chatsessions.test_logs")
    logger.addHandler(handler)
    logger.propagate = False
    yield logger, stream, handler
    logger.removeHandler(handler)


@pytest.mark.parametrize("formatter", [logging.Formatter(), JsonFormatter()])
def test_records_are_clean_whatever_writes_them(
    captured: tuple[logging.Logger, io.StringIO, logging.Handler], formatter: logging.Formatter
) -> None:
    logger, stream, handler = captured
    handler.setFormatter(formatter)
    try:
        raise RuntimeError(f"header was Authorization: Bearer {TOKEN}")
    except RuntimeError:
        logger.exception("a request with %s failed", f"Bearer {TOKEN}")
    record_text = stream.getvalue()
    assert TOKEN[3:13] not in record_text
    assert "a request with Bearer [redacted]" in record_text
    assert "RuntimeError: header was Authorization [redacted]" in record_text
    assert "Traceback" in record_text


def test_a_parser_error_keeps_its_reason_and_drops_the_bytes_it_quotes(
    captured: tuple[logging.Logger, io.StringIO, logging.Handler],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An obs-folded header shows the secret with nothing around it to recognise."""
    logger, stream, _ = captured
    secret = "0123456789abcdef0123456789abcdef"
    folded = BadHttpMessage(f"Unexpected whitespace after header value:\n\n  b' {secret}'\n  ^")
    too_long = LineTooLong(f"Bearer {secret}".encode() + b"a" * 9000, 8190)
    in_body = RequestPayloadError(f"chunk {secret}")
    in_body.__cause__ = BadHttpMessage(f"Invalid character in chunk size:\n\n  b'{secret}'")
    for error in (folded, too_long, in_body):
        logger.error("Error handling request from %s", "127.0.0.1", exc_info=error)
    lines = stream.getvalue().splitlines()
    assert secret[:10] not in stream.getvalue()
    assert lines == [
        "Error handling request from 127.0.0.1",
        "aiohttp.http_exceptions.BadHttpMessage: 400, Unexpected whitespace after header value"
        " (the request's bytes are not logged)",
        "Error handling request from 127.0.0.1",
        "aiohttp.http_exceptions.LineTooLong: 400, Got more than 8190 bytes when reading"
        " (the request's bytes are not logged)",
        "Error handling request from 127.0.0.1",
        "aiohttp.web_protocol.RequestPayloadError (the request's bytes are not logged)",
        "  from aiohttp.http_exceptions.BadHttpMessage: 400, Invalid character in chunk size",
    ]


def test_the_exception_stays_on_the_record_for_code_that_inspects_it(
    captured: tuple[logging.Logger, io.StringIO, logging.Handler],
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger, _, _ = captured
    logger.propagate = True
    error = ValueError(f"token {TOKEN}")
    with caplog.at_level(logging.ERROR, logger=logger.name):
        logger.error("failed", exc_info=error)
    assert caplog.records
    for record in caplog.records:
        assert record.exc_info is not None and record.exc_info[1] is error
    assert TOKEN not in caplog.text
