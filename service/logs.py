"""Logging: text or one JSON object per line; one access line per request; no secret
in any line.

A token must never be written to a log (SPEC §4), and the lines most likely to carry
one are not ours: aiohttp's parser quotes the bytes of a header it refuses
(``Authorization: Bearer <token>\x01``, a header over 8190 bytes) in the exception it
logs at ERROR. So every record this process makes passes through :func:`redact_record`
as it is made, whatever its logger and whichever handler writes it: its message is
rendered and cleaned, its traceback rendered and cleaned into ``exc_text`` (which
logging's formatters print instead of formatting ``exc_info`` again), and an error of
aiohttp's HTTP parser keeps its status and reason but none of the bytes it quotes. Our own
handler cleans each finished line once more, extra fields included.
"""

from __future__ import annotations

import atexit
import io
import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, TextIO

import orjson
from aiohttp.http_exceptions import HttpProcessingError

ACCESS_LOGGER = "chatsessions.access"

REDACTED = "[redacted]"
# What follows "Authorization" or "Bearer" up to the end of its line, however the header
# was quoted or escaped (a repr turns "\x01" into four characters), and any token of
# ours ("cs_" and URL-safe base64), even a prefix of one that a message cut short.
SECRET = re.compile(
    r"(?i)(?P<head>\b(?:proxy-)?authorization\b|\bbearer\b)[^\r\n]*"
    r"|(?<![A-Za-z0-9])cs_[A-Za-z0-9_-]+"
)
# The reason of a parser error is its text up to the input it quotes: after a colon, on
# a line of its own, or as a literal (b'…', bytearray(b'…'), '…').
QUOTED_INPUT = re.compile(r"[:\n]| (?:bytearray\()?b?['\"]")


def redact(text: str) -> str:
    """``text`` without anything that may be a token or an Authorization value."""
    return SECRET.sub(_replacement, text)


def _replacement(match: re.Match[str]) -> str:
    head = match.group("head")
    return f"{head} {REDACTED}" if head else f"cs_{REDACTED}"


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and those it was raised from or while handling, as a traceback shows them."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        context = None if current.__suppress_context__ else current.__context__
        current = current.__cause__ or context
    return chain


def _request_error_text(chain: list[BaseException]) -> str:
    """A chain holding a parser error, one line per exception, without the request bytes
    the parser's messages quote (an obs-folded header line, say, shows a token with
    nothing before it to recognise): a parser error keeps its status and reason, any
    other exception of the chain, which may repeat the parser's message, its type."""
    lines = []
    for error in chain:
        kind = f"{type(error).__module__}.{type(error).__qualname__}"
        if isinstance(error, HttpProcessingError):
            reason = QUOTED_INPUT.split(error.message, 1)[0].strip()
            kind += f": {error.code}, {reason}"
        lines.append(kind)
    return f"{lines[0]} (the request's bytes are not logged)" + "".join(
        f"\n  from {line}" for line in lines[1:]
    )


def redact_record(record: logging.LogRecord) -> None:
    """Cleans ``record`` in place: message rendered, traceback rendered, both redacted.

    ``exc_info`` stays for code that inspects the exception; logging's formatters print
    ``exc_text`` when it is set, and ours do.
    """
    record.msg = redact(record.getMessage())
    record.args = None
    if record.exc_info and record.exc_info[1] is not None:
        chain = _chain(record.exc_info[1])
        if any(isinstance(error, HttpProcessingError) for error in chain):
            text = _request_error_text(chain)
        else:
            text = "".join(traceback.format_exception(chain[0])).rstrip("\n")
        record.exc_text = redact(text)
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


class _RedactingFactory:
    """The process's log record factory: the one it replaced, then :func:`redact_record`."""

    def __init__(self, make: Callable[..., logging.LogRecord]) -> None:
        self.make = make

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.make(*args, **kwargs)
        redact_record(record)
        return record


def install_redaction() -> None:
    """Makes every log record of this process pass through :func:`redact_record` (once,
    however often it is called)."""
    current = logging.getLogRecordFactory()
    if not isinstance(current, _RedactingFactory):
        logging.setLogRecordFactory(_RedactingFactory(current))


# On import: every app this package builds imports this module, so a record is cleaned
# whether the app is served by `chatsessions serve` or by a test client.
install_redaction()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return orjson.dumps(entry).decode()


class BufferedStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes through a buffer: one system call per many access lines, not one per request.

    Warnings and errors are flushed at once; the rest within FLUSH_INTERVAL, when the
    app's flusher runs, or at exit.
    """

    BUFFER_BYTES = 64 * 1024

    def __init__(self) -> None:
        super().__init__(
            io.TextIOWrapper(
                io.BufferedWriter(io.FileIO(os.dup(sys.stderr.fileno()), "w"), self.BUFFER_BYTES),
                encoding="utf-8",
                errors="backslashreplace",
                line_buffering=False,
            )
        )

    def flush(self) -> None:
        self.acquire()
        try:
            if self.stream and not self.stream.closed:
                self.stream.flush()
        finally:
            self.release()

    def format(self, record: logging.LogRecord) -> str:
        # Whatever the formatter added (extra fields too) is cleaned once more.
        return redact(super().format(record))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + "\n")
            if record.levelno >= logging.WARNING:
                self.stream.flush()
        except Exception:
            self.handleError(record)


FLUSH_INTERVAL = 0.5


def flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    handler: logging.Handler = BufferedStreamHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    install_redaction()
    atexit.register(flush_logs)


def line_ending(hundredths: int) -> str:
    """The end of an access line: its time, ``hundredths`` of a millisecond, as ms."""
    return f"{hundredths // 100}.{hundredths % 100:02d}ms\n"


# The line endings up to 10 ms, where nearly every answer falls: looked up, not
# formatted per request.
LINE_ENDINGS = tuple(line_ending(n) for n in range(1000))


class AccessLog:
    """One line per request, written straight to a buffered stream.

    Going through ``logging`` costs a LogRecord and a lock per request; these lines
    have one fixed shape, so they skip it. The lines look like the
    ``chatsessions.access`` lines logging would write.
    """

    def __init__(self, log_format: str, stream: TextIO | None = None) -> None:
        self._json = log_format == "json"
        self._stream = stream if stream is not None else BufferedStreamHandler().stream
        self._stamp = ""
        # When the stamp must change, and each line's text up to its time, by (method,
        # route, status), for the current second: each head is formatted once a second,
        # not once per request.
        self._next_second = 0.0
        self._heads: dict[tuple[str, str, int], str] = {}

    def _new_second(self, now: float) -> None:
        second = int(now)
        self._next_second = second + 1.0
        self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(second))
        self._heads = {}

    def record(self, method: str, route: str, status: int, nanoseconds: int) -> None:
        """Method, route template, status and time: never the path's ids, a body or a header."""
        if (now := time.time()) >= self._next_second:
            self._new_second(now)
        # Rounded to the nearest hundredth of a millisecond.
        hundredths = (nanoseconds + 5_000) // 10_000
        if self._json:
            ms = hundredths / 100
            line = orjson.dumps(
                {
                    "time": self._stamp,
                    "level": "info",
                    "logger": ACCESS_LOGGER,
                    "message": f"{method} {route} {status} {ms:.2f}ms",
                    "method": method,
                    "route": route,
                    "status": status,
                    "ms": ms,
                }
            ).decode()
            self._stream.write(line + "\n")
            return
        key = (method, route, status)
        head = self._heads.get(key)
        if head is None:
            head = self._heads[key] = (
                f"{self._stamp} INFO {ACCESS_LOGGER} {method} {route} {status} "
            )
        ending = (
            LINE_ENDINGS[hundredths] if hundredths < len(LINE_ENDINGS) else line_ending(hundredths)
        )
        self._stream.write(head + ending)

    def flush(self) -> None:
        self._stream.flush()
