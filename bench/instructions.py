"""python -m bench.instructions [--seconds 10]

Instructions per request, counted by valgrind's callgrind: the service and the bare
baseline each run under callgrind, counting only while wrk drives them. Counts do
not move with the machine's noise the way times do, so two versions of the code can
be compared on a busy two-core machine. What a count leaves out: time spent waiting
on memory and in the kernel, which wall-clock runs (``python -m bench``) include.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .__main__ import DISTINCT_PAGES, batch_load, fetch, seed_sessions
from .baseline import LIST_PATH
from .load import CONNECTIONS, FIRST_PAGE, INGEST_FORMAT, ensure_wrk, ingest_script, pages_script
from .servers import TOKEN, Managed, RedisServer, ServiceServer, free_port

# Under callgrind a Python process starts many times slower than it does alone.
START_TIMEOUT = 180.0
WARM_UP_SECONDS = 3


@dataclass(frozen=True)
class Count:
    label: str
    instructions: int
    units: float
    unit: str

    @property
    def per_unit(self) -> float:
        return self.instructions / self.units if self.units else float("nan")


def ensure_valgrind() -> str:
    found = shutil.which("valgrind")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "valgrind"], capture_output=True, check=False
        )
        found = shutil.which("valgrind")
    if found is None:
        raise SystemExit("valgrind is needed: apt-get install valgrind")
    return found


def dumped_instructions(path: Path) -> int | None:
    """The instruction total of a callgrind dump, or None while it is still being written."""
    match = re.search(r"^totals:\s*(\d+)", path.read_text(errors="replace"), re.M)
    return int(match.group(1)) if match else None


class Counted(Managed):
    """A server under callgrind with counting off until :meth:`counting` turns it on."""

    def __init__(self, argv: list[str], env: dict[str, str], workdir: Path, port: int) -> None:
        self.argv = argv
        self.env = env
        self.workdir = workdir
        self.port = port
        self.dump = workdir / f"callgrind-{port}.out"

    def start_process(self) -> subprocess.Popen[bytes]:
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.workdir / f"server-{self.port}.log", "ab") as log:
            self.process = process = subprocess.Popen(
                [ensure_valgrind(), "--tool=callgrind", "--instr-atstart=no",
                 f"--callgrind-out-file={self.dump}", *self.argv],
                cwd=self.workdir, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            )  # fmt: skip
        return process

    def start(self, ready_path: str) -> Counted:
        process = self.start_process()
        deadline = time.monotonic() + START_TIMEOUT
        url = f"http://127.0.0.1:{self.port}{ready_path}"
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{self.argv} exited with {process.returncode}")
            try:
                with urllib.request.urlopen(url, timeout=5):
                    return self
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"{url} did not answer in time")

    def control(self, *args: str) -> None:
        assert self.process is not None
        subprocess.run(
            ["callgrind_control", *args, str(self.process.pid)], capture_output=True, check=True
        )


def counted_run(server: Counted, drive: Callable[[], float]) -> tuple[int, float]:
    """Instructions the server executes while ``drive()`` runs, and what drive returned."""
    server.control("-i", "on")
    units = float(drive())
    server.control("-i", "off")
    server.control("-d")
    deadline = time.monotonic() + 60
    while True:
        dumps = sorted(server.workdir.glob(server.dump.name + ".*"))
        totals = [dumped_instructions(path) for path in dumps]
        if dumps and None not in totals:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("callgrind wrote no complete dump")
        time.sleep(0.2)
    instructions = sum(t for t in totals if t is not None)
    for path in dumps:
        path.unlink()
    return instructions, units


def wrk_requests(wrk: str, url: str, seconds: int, script: str | None = None) -> int:
    args = [wrk, "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "-H", f"Authorization: Bearer {TOKEN}"]
    script_path = None
    if script is not None:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
            handle.write(script)
            script_path = handle.name
        args += ["-s", script_path]
    try:
        output = subprocess.run(
            [*args, url], capture_output=True, text=True, timeout=seconds + 120, check=True
        ).stdout
    finally:
        if script_path:
            os.unlink(script_path)
    match = re.search(r"(\d+) requests in", output)
    if match is None or re.search(r"Non-2xx", output):
        raise RuntimeError(f"wrk failed or got errors:\n{output}")
    return int(match.group(1))


def service_server(redis_url: str, workdir: Path) -> Counted:
    service = ServiceServer(redis_url, workdir)
    argv = [sys.executable, "-m", "service", "serve"]
    return Counted(argv, service.environment(), workdir, service.port).start("/healthz")


def baseline_server(body: bytes, workdir: Path) -> Counted:
    port = free_port()
    body_path = workdir / "baseline-body.json"
    workdir.mkdir(parents=True, exist_ok=True)
    body_path.write_bytes(body)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    argv = [sys.executable, "-m", "bench.baseline", str(port), str(body_path)]
    return Counted(argv, env, workdir, port).start(LIST_PATH)


CASES = ("list", "pages", "ingest", "batch")


def measure(seconds: int, workdir: Path, cases: Sequence[str] = CASES) -> list[tuple[Count, Count]]:
    wrk = ensure_wrk()
    if wrk is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    redis = RedisServer(workdir / "redis").start()
    pairs: list[tuple[Count, Count]] = []
    listed = paged = ingested = batched = None
    try:
        client = redis.client()
        seed_sessions(client, 1000, int(time.time() * 1000))
        service = service_server(redis.url, workdir / "service")
        try:
            base = f"http://127.0.0.1:{service.port}"
            page_url = base + FIRST_PAGE
            body = fetch(page_url)
            if "list" in cases:
                wrk_requests(wrk, page_url, WARM_UP_SECONDS)
                listed = counted_run(service, lambda: wrk_requests(wrk, page_url, seconds))
            if "pages" in cases:
                # Offsets 0 to 999 in turn: no two requests in flight share a round trip.
                pages = pages_script(FIRST_PAGE, DISTINCT_PAGES)
                wrk_requests(wrk, page_url, WARM_UP_SECONDS, pages)
                paged = counted_run(service, lambda: wrk_requests(wrk, page_url, seconds, pages))
            if "ingest" in cases:
                ingest_url = base + INGEST_FORMAT % 0
                wrk_requests(wrk, ingest_url, WARM_UP_SECONDS, ingest_script("warm"))
                ingested = counted_run(
                    service, lambda: wrk_requests(wrk, ingest_url, seconds, ingest_script("i"))
                )
            if "batch" in cases:
                client.flushall()
                asyncio.run(batch_load(base, WARM_UP_SECONDS))
                client.flushall()
                batched = counted_run(service, lambda: asyncio.run(batch_load(base, seconds))[0])
        finally:
            service.stop()
        bare = baseline_server(body, workdir / "baseline")
        try:
            bare_url = f"http://127.0.0.1:{bare.port}"
            if listed is not None or paged is not None:
                # The very requests the service was sent, headers and all.
                wrk_requests(wrk, bare_url + FIRST_PAGE, WARM_UP_SECONDS)
                bare_list = counted_run(
                    bare, lambda: wrk_requests(wrk, bare_url + FIRST_PAGE, seconds)
                )
                same_bytes = Count("bare: same bytes", *bare_list, "request")
                if listed is not None:
                    pairs.append((Count("list page (limit=50)", *listed, "request"), same_bytes))
                if paged is not None:
                    pairs.append((Count("distinct pages", *paged, "request"), same_bytes))
            if ingested is not None:
                bare_ingest = counted_run(
                    bare,
                    lambda: wrk_requests(
                        wrk, bare_url + INGEST_FORMAT % 0, seconds, ingest_script("b")
                    ),
                )
                pairs.append(
                    (
                        Count("single ingest", *ingested, "request"),
                        Count("bare: parse JSON and 201", *bare_ingest, "request"),
                    )
                )
        finally:
            bare.stop()
    finally:
        redis.stop()
    if batched is not None:
        pairs.append((Count("batch ingest", *batched, "message"), Count("-", 0, 0, "-")))
    return pairs


def report(pairs: list[tuple[Count, Count]]) -> str:
    lines = [
        "| case | instructions per unit | bare baseline | bare / ours |",
        "|---|---:|---:|---:|",
    ]
    for ours, bare in pairs:
        if bare.units:
            lines.append(
                f"| {ours.label} | {ours.per_unit / 1000:,.1f} k per {ours.unit} "
                f"| {bare.per_unit / 1000:,.1f} k | {bare.per_unit / ours.per_unit:.2f} |"
            )
        else:
            lines.append(
                f"| {ours.label} | {ours.per_unit / 1000:,.1f} k per {ours.unit} | - | - |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument(
        "--case", action="append", choices=CASES, help="measure only this case (repeatable)"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="chatsessions-instructions-"))
    try:
        print(report(measure(args.seconds, workdir, args.case or CASES)))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
