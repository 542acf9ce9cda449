"""Prometheus metrics: plain counts in each process, summed across worker processes.

Counting a request is a dict update and a bisect on plain Python numbers.
prometheus-client's own metric objects, which take a lock per update and walk the
buckets in Python, stay off the request path: the counts change only on the event
loop's thread, so they need no lock. prometheus-client still writes the exposition
text, from the counts, at scrape time.

With several workers the supervisor points ``PROMETHEUS_MULTIPROC_DIR`` at a private
folder before starting them. Each worker writes its counts there as it flushes its
logs (twice a second), and ``/metrics`` in any worker adds up the others' last
counts and its own current ones. So another worker's latest half second of requests
may show at the next scrape, not this one; a counter never goes back, and the counts
of a worker that died stay in the sum.
"""

from __future__ import annotations

import logging
import os
from bisect import bisect_left
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("chatsessions.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# The same bounds in nanoseconds, as requests are timed.
LATENCY_BOUNDS_NS = tuple(round(bound * 1e9) for bound in LATENCY_BUCKETS)
# The plain counters, with their help texts.
COUNTERS = {
    "redis_errors": "Requests that found Redis unreachable, timing out or failing over.",
    "messages_ingested": "Messages stored (repeated message ids are not counted).",
    "sessions_created": "Sessions created, by POST /api/sessions or by their first message.",
    "sessions_erased": "Sessions deleted by DELETE /api/users/{user} (erasure of a person).",
    "sessions_swept": "Sessions deleted by retention (retention_days), by the sweep.",
}
# Webhook counters, per endpoint name (never its URL, which may hold a secret).
WEBHOOK_COUNTERS = {
    "delivered": "Events a webhook endpoint acknowledged with a 2xx answer.",
    "failed": "Webhook delivery attempts that failed: no connection, no answer in time, not 2xx.",
    "retried": "Webhook delivery attempts that repeated a failed one.",
    "dropped": "Events a webhook gave up on, failing when older than webhook_max_age.",
}
SNAPSHOT_SUFFIX = ".metrics.json"


class Counts:
    """One process's counts, in a shape that adds up and goes to JSON as it is."""

    def __init__(self) -> None:
        # (method, route, status) -> requests answered
        self.requests: dict[tuple[str, str, int], int] = {}
        # route -> requests per latency bucket (the last one above every bound), then
        # the sum of their nanoseconds
        self.latency: dict[str, list[float]] = {}
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        # (webhook name, one of WEBHOOK_COUNTERS) -> count
        self.webhooks: dict[tuple[str, str], int] = {}

    def add(self, other: Counts) -> None:
        for key, count in other.requests.items():
            self.requests[key] = self.requests.get(key, 0) + count
        for route, row in other.latency.items():
            mine = self.latency.setdefault(route, [0.0] * len(row))
            for n, value in enumerate(row):
                mine[n] += value
        for name, count in other.counters.items():
            self.counters[name] = self.counters.get(name, 0) + count
        for pair, count in other.webhooks.items():
            self.webhooks[pair] = self.webhooks.get(pair, 0) + count

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "requests": [[*key, count] for key, count in self.requests.items()],
                "latency": self.latency,
                "counters": self.counters,
                "webhooks": [[*key, count] for key, count in self.webhooks.items()],
            }
        )

    @classmethod
    def from_json(cls, raw: bytes) -> Counts:
        data: dict[str, Any] = orjson.loads(raw)
        counts = cls()
        counts.requests = {(m, r, int(s)): int(n) for m, r, s, n in data["requests"]}
        counts.latency = {route: [float(v) for v in row] for route, row in data["latency"].items()}
        counts.counters.update({name: int(n) for name, n in data["counters"].items()})
        counts.webhooks = {(w, c): int(n) for w, c, n in data.get("webhooks", [])}
        return counts


class Metrics:
    def __init__(self, folder: str | None = None, name: str | None = None) -> None:
        """``folder``: where the workers' counts meet, by default ``$PROMETHEUS_MULTIPROC_DIR``
        when it is set; ``name``: this process's file there, by default its pid."""
        self.counts = Counts()
        self._folder = Path(folder) if folder else _folder_from_environment()
        file_name = f"{name or os.getpid()}{SNAPSHOT_SUFFIX}"
        self._snapshot = None if self._folder is None else self._folder / file_name
        self._flush_failed = False
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_CountsCollector(self))

    def observe(self, method: str, route: str, status: int, nanoseconds: int) -> None:
        """One answered request, which took ``nanoseconds``."""
        requests = self.counts.requests
        key = (method, route, status)
        requests[key] = requests.get(key, 0) + 1
        row = self.counts.latency.get(route)
        if row is None:
            row = self.counts.latency[route] = [0.0] * (len(LATENCY_BUCKETS) + 2)
        row[bisect_left(LATENCY_BOUNDS_NS, nanoseconds)] += 1
        row[-1] += nanoseconds

    def count(self, name: str, amount: int = 1) -> None:
        """Adds to one of :data:`COUNTERS`."""
        self.counts.counters[name] += amount

    def webhook(self, name: str, counter: str, amount: int = 1) -> None:
        """Adds to one of :data:`WEBHOOK_COUNTERS` of the webhook ``name`` (0 makes it
        show before anything happened)."""
        key = (name, counter)
        self.counts.webhooks[key] = self.counts.webhooks.get(key, 0) + amount

    def flush(self) -> None:
        """Leave this process's counts where the other workers read them.

        A folder that cannot be written (removed, full) costs the other workers this
        worker's latest counts, not the flusher that also flushes the logs.
        """
        if self._snapshot is None:
            return
        partial = self._snapshot.with_suffix(".tmp")
        try:
            partial.write_bytes(self.counts.to_json())
            os.replace(partial, self._snapshot)
        except OSError as error:
            if not self._flush_failed:
                log.warning("metrics counts not written to %s: %s", self._folder, error)
            self._flush_failed = True
        else:
            self._flush_failed = False

    def total(self) -> Counts:
        """This process's counts plus the last ones of every other worker."""
        total = Counts()
        total.add(self.counts)
        if self._folder is not None:
            for path in self._folder.glob("*" + SNAPSHOT_SUFFIX):
                if path != self._snapshot:
                    try:
                        total.add(Counts.from_json(path.read_bytes()))
                    except FileNotFoundError:
                        continue
        return total

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _CountsCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        counts = self._metrics.total()
        requests = CounterMetricFamily(
            "chatsessions_requests",
            "HTTP requests answered, by method, route template and status.",
            labels=["method", "route", "status"],
        )
        for (method, route, status), count in sorted(counts.requests.items()):
            requests.add_metric([method, route, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "chatsessions_request_seconds",
            "Time from request to response, by route template.",
            labels=["route"],
        )
        bounds = [*(str(bound) for bound in LATENCY_BUCKETS), "+Inf"]
        for route, row in sorted(counts.latency.items()):
            cumulative: list[tuple[str, float]] = []
            seen = 0.0
            for bound, in_bucket in zip(bounds, row, strict=False):
                seen += in_bucket
                cumulative.append((bound, seen))
            latency.add_metric([route], cumulative, sum_value=row[-1] / 1e9)
        yield latency
        for name, help_text in COUNTERS.items():
            yield CounterMetricFamily(
                f"chatsessions_{name}", help_text, value=counts.counters.get(name, 0)
            )
        for counter, help_text in WEBHOOK_COUNTERS.items():
            family = CounterMetricFamily(
                f"chatsessions_webhook_{counter}", help_text, labels=["webhook"]
            )
            for (name, kind), count in sorted(counts.webhooks.items()):
                if kind == counter:
                    family.add_metric([name], count)
            yield family


def _folder_from_environment() -> Path | None:
    folder = os.environ.get(MULTIPROC_ENV)
    return Path(folder) if folder else None
