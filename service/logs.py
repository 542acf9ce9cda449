"""Logging: text or one JSON object per line; one access line per request."""

from __future__ import annotations

import logging
import sys
from typing import Any

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


def configure_logging(log_format: str, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def log_access(method: str, route: str, status: int, ms: float) -> None:
    """Method, route template, status and time: never the path's ids, a body or a header."""
    logging.getLogger(ACCESS_LOGGER).info(
        "%s %s %d %.2fms",
        method,
        route,
        status,
        ms,
        extra={"fields": {"method": method, "route": route, "status": status, "ms": round(ms, 2)}},
    )
