"""HTTP load from a separate process: wrk when it can be had, else an aiohttp client."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import aiohttp

CONNECTIONS = 32
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
MESSAGE_BODY = '{"role":"user","content":"%s","channel":"web","id":"%s"}'
# 100 bytes of content, as in the memory figure per message.
CONTENT = "a message of one hundred bytes: " + "x" * 68
# What the cases ask for: the first page of the list, and messages to 1,000 sessions.
FIRST_PAGE = "/api/sessions?limit=50"
INGEST_FORMAT = "/api/sessions/bench%d/messages"


@dataclass(frozen=True)
class LoadResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    tool: str
    # CPU time the server used per request, when the harness measured it.
    cpu_us_per_request: float | None = None


def ensure_wrk() -> str | None:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], capture_output=True, check=False)
    return shutil.which("wrk")


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * UNITS[unit]


def parse_wrk(output: str) -> LoadResult:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE).group(1))  # type: ignore[union-attr]
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    if socket_errors:
        errors += sum(int(n) for n in re.findall(r"\d+", socket_errors.group(1)))
    return LoadResult(rps, p50, p99, errors, "wrk")


def wrk_script(path_format: str, sessions: int, id_prefix: str) -> str:
    body = MESSAGE_BODY % (CONTENT, "%s")
    return (
        "counter = 0\n"
        "wrk.headers['Content-Type'] = 'application/json'\n"
        "request = function()\n"
        "  counter = counter + 1\n"
        f"  local body = string.format('{body}', '{id_prefix}' .. counter)\n"
        f"  local path = string.format('{path_format}', counter % {sessions})\n"
        "  return wrk.format('POST', path, nil, body)\n"
        "end\n"
    )


def ingest_script(label: str) -> str:
    """Single messages to 1,000 sessions (INGEST_FORMAT), with ids no other run has sent:
    wrk counts from 1 again on every run, and a repeated id is answered from the store,
    not written."""
    return wrk_script(INGEST_FORMAT, 1000, f"{label}{time.time_ns()}-")


def pages_script(list_path: str, pages: int) -> str:
    """A wrk script asking for ``list_path`` at offsets 0 to ``pages - 1`` in turn."""
    return (
        "counter = 0\n"
        "request = function()\n"
        "  counter = counter + 1\n"
        f"  return wrk.format('GET', '{list_path}&offset=' .. (counter % {pages}))\n"
        "end\n"
    )


def run_wrk(
    wrk: str,
    url: str,
    seconds: float,
    headers: dict[str, str],
    script: str | None = None,
) -> LoadResult:
    args = [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{max(1, round(seconds))}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        if script:
            handle.write(script)
        script_path = handle.name
    try:
        if script:
            args += ["-s", script_path]
        output = subprocess.run(
            [*args, url], capture_output=True, text=True, timeout=seconds + 60, check=True
        ).stdout
    finally:
        os.unlink(script_path)
    return parse_wrk(output)


async def _client_load(
    url: str, seconds: float, headers: dict[str, str], post_format: str | None, sessions: int
) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    counter = 0
    deadline = time.monotonic() + seconds
    # A POST goes to the path post_format makes, on url's scheme, host and port.
    origin = "/".join(url.split("/", 3)[:3])
    # Message ids of this run's own, as a new message is what the case measures.
    run = time.time_ns()

    async def worker(session: aiohttp.ClientSession, worker_id: int) -> None:
        nonlocal errors, counter
        while time.monotonic() < deadline:
            counter += 1
            started = time.perf_counter()
            if post_format is None:
                request = session.get(url, headers=headers)
            else:
                body = MESSAGE_BODY % (CONTENT, f"py{run}-{worker_id}-{counter}")
                target = origin + post_format % (counter % sessions)
                request = session.post(
                    target, data=body, headers={**headers, "Content-Type": "application/json"}
                )
            async with request as response:
                await response.read()
                errors += response.status >= 300
            latencies.append((time.perf_counter() - started) * 1000)

    connector = aiohttp.TCPConnector(limit=CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session, n) for n in range(CONNECTIONS)))
    latencies.sort()
    return LoadResult(
        len(latencies) / seconds,
        statistics.median(latencies),
        latencies[int(len(latencies) * 0.99) - 1],
        errors,
        "aiohttp",
    )


def client_load(
    url: str, seconds: float, headers: dict[str, str], post_format: str | None, sessions: int
) -> LoadResult:
    """The fallback, in a process of its own so it does not share the server's core."""
    code = (
        "import asyncio, sys, orjson\n"
        "from bench.load import _client_load\n"
        "r = asyncio.run(_client_load(*orjson.loads(sys.argv[1])))\n"
        "print(orjson.dumps(r.__dict__).decode())\n"
    )
    import orjson

    payload = orjson.dumps([url, seconds, headers, post_format, sessions]).decode()
    output = subprocess.run(
        [sys.executable, "-c", code, payload], capture_output=True, text=True, check=True
    ).stdout
    return LoadResult(**orjson.loads(output))
