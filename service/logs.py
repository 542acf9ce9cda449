"""Logging: text or one JSON object per line; one access line per request."""

from __future__ import annotations

import atexit
import io
import logging
import os
import sys
import time
from typing import Any, TextIO

import orjson

ACCESS_LOGGER = "chatsessions.access"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
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
    atexit.register(flush_logs)


# The end of an access line after its whole milliseconds, by hundredths: a float
# formatted with two decimals cost more than the rest of the line.
HUNDREDTHS = tuple(f".{n:02d}ms\n" for n in range(100))


class AccessLog:
    """One line per request, written straight to a buffered stream.

    Going through ``logging`` costs a LogRecord and a lock per request, an eighth of
    a list request's CPU; these lines have one fixed shape, so they skip it. The
    lines look like the ``chatsessions.access`` lines logging would write.
    """

    def __init__(self, log_format: str, stream: TextIO | None = None) -> None:
        self._json = log_format == "json"
        self._stream = stream if stream is not None else BufferedStreamHandler().stream
        self._stamp = ""
        # When the stamp must change, and each line's text up to its time, by (method,
        # route, status), for the current second: formatting them anew per request
        # (the stamp, the float) was half of a line's cost.
        self._next_second = 0.0
        self._heads: dict[tuple[str, str, int], str] = {}

    def _time(self) -> str:
        now = time.time()
        if now >= self._next_second:
            second = int(now)
            self._next_second = second + 1.0
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(second))
            self._heads = {}
        return self._stamp

    def record(self, method: str, route: str, status: int, ms: float) -> None:
        """Method, route template, status and time: never the path's ids, a body or a header."""
        stamp = self._time()
        if self._json:
            line = orjson.dumps(
                {
                    "time": stamp,
                    "level": "info",
                    "logger": ACCESS_LOGGER,
                    "message": f"{method} {route} {status} {ms:.2f}ms",
                    "method": method,
                    "route": route,
                    "status": status,
                    "ms": round(ms, 2),
                }
            ).decode()
            self._stream.write(line + "\n")
            return
        key = (method, route, status)
        head = self._heads.get(key)
        if head is None:
            head = self._heads[key] = f"{stamp} INFO {ACCESS_LOGGER} {method} {route} {status} "
        hundredths = int(ms * 100 + 0.5)
        self._stream.write(head + str(hundredths // 100) + HUNDREDTHS[hundredths % 100])

    def flush(self) -> None:
        self._stream.flush()
