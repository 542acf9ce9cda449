"""One round of load on one server, as the main harness runs it (bench/__main__.py's
Harness.load), for the rows of ``bench live`` and ``bench organise``: wrk (or the
aiohttp fallback) from a process of its own, and the CPU time the server spent on it."""

from __future__ import annotations

from dataclasses import replace

from .load import LoadResult, client_load, run_wrk
from .servers import Managed

# Seconds of load, not measured, on each server before its first round.
WARM_UP_SECONDS = 2


def warm_up(
    wrk: str | None,
    url: str,
    headers: dict[str, str],
    script: str | None = None,
    post_format: str = "",
) -> None:
    """Load that is not measured: a server's first second is not what it serves after."""
    if wrk:
        run_wrk(wrk, url, WARM_UP_SECONDS, headers, script)
    else:
        client_load(url, WARM_UP_SECONDS, headers, post_format or None, 1000)


def load_round(
    wrk: str | None,
    url: str,
    server: Managed,
    seconds: float,
    headers: dict[str, str],
    script: str | None = None,
    post_format: str = "",
) -> LoadResult:
    """One round of ``seconds`` on ``url``, served by ``server``, with that server's CPU
    time per request."""
    seconds = float(max(1, round(seconds)))
    cpu_before = server.cpu_seconds()
    if wrk:
        result = run_wrk(wrk, url, seconds, headers, script)
    else:
        result = client_load(url, seconds, headers, post_format or None, 1000)
    cpu = server.cpu_seconds() - cpu_before
    requests = result.requests_per_second * seconds
    return replace(result, cpu_us_per_request=cpu / requests * 1e6 if requests else None)
