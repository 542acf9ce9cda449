"""python -m bench.cluster: list and ingest throughput on a 1-master vs a 3-master cluster.

Both are real Redis Clusters of redis-server processes (the 1-master one owns
all 16384 slots), served by ``chatsessions serve --workers 2``. Load comes from
wrk, spread over six namespaces (one token each), so that on three masters
every master gets some of it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import redis

from .__main__ import seed_sessions
from .load import CONTENT, FIRST_PAGE, INGEST_FORMAT, ensure_wrk, run_wrk
from .servers import RedisServer, free_port, wait_http

NAMESPACES = [f"tenant{n}" for n in range(6)]
SESSIONS_PER_NAMESPACE = 10_000


def token_of(namespace: str) -> str:
    return f"cs_bench_{namespace}_0123456789abcdef"


def cluster_port() -> int:
    while True:
        port = free_port()
        if port <= 55535:
            return port


def start_cluster(workdir: Path, masters: int) -> list[RedisServer]:
    nodes = []
    for _ in range(masters):
        port = cluster_port()
        node = RedisServer(workdir / f"node{port}", port=port)
        node.start("--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf")
        nodes.append(node)
    if masters == 1:
        nodes[0].client().execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)  # type: ignore[no-untyped-call]
    else:
        subprocess.run(
            ["redis-cli", "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes),
             "--cluster-yes"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(n.client().cluster("INFO")["cluster_state"] == "ok" for n in nodes):
            return nodes
        time.sleep(0.2)
    raise RuntimeError("cluster did not become ok")


def seed(nodes: list[RedisServer]) -> None:
    client = redis.RedisCluster(host="127.0.0.1", port=nodes[0].port)
    now = int(time.time() * 1000)
    for namespace in NAMESPACES:
        node = client.get_node_from_key(f"cs:{{{namespace}}}:index")  # type: ignore[no-untyped-call]
        plain = redis.Redis(host="127.0.0.1", port=node.port)
        seed_sessions(plain, SESSIONS_PER_NAMESPACE, now, namespace=namespace)
    client.close()


def start_service(url: str, workdir: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    entries = [
        {"name": ns, "sha256": hashlib.sha256(token_of(ns).encode()).hexdigest(),
         "scopes": ["read", "write"], "namespace": ns}
        for ns in NAMESPACES
    ]  # fmt: skip
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHATSESSIONS_")},
        "CHATSESSIONS_REDIS_URL": url,
        "CHATSESSIONS_PORT": str(port),
        "CHATSESSIONS_WORKERS": str(workers),
        "CHATSESSIONS_TOKENS": orjson.dumps(entries).decode(),
    }
    workdir.mkdir(parents=True, exist_ok=True)
    log = open(workdir / "serve.log", "ab")  # noqa: SIM115 closed with the process
    process = subprocess.Popen(
        [sys.executable, "-m", "service", "serve"], cwd=workdir, env=env, stdout=log, stderr=log
    )
    wait_http(f"http://127.0.0.1:{port}/healthz", process)
    return process, f"http://127.0.0.1:{port}"


def rotating_script(path: str, post: bool) -> str:
    """wrk picks the next namespace's token for every request."""
    tokens = ", ".join(f"'{token_of(ns)}'" for ns in NAMESPACES)
    body = (
        'local body = string.format(\'{"role":"user","content":"'
        + CONTENT
        + '","channel":"web","id":"c%d"}\', counter)\n'
    )
    method = "POST" if post else "GET"
    return (
        f"tokens = {{{tokens}}}\ncounter = 0\n"
        "wrk.headers['Content-Type'] = 'application/json'\n"
        "request = function()\n"
        "  counter = counter + 1\n"
        "  wrk.headers['Authorization'] = 'Bearer ' .. tokens[counter % #tokens + 1]\n"
        + (("  " + body) if post else "  local body = nil\n")
        + f"  local path = string.format('{path}', counter % 500)\n"
        f"  return wrk.format('{method}', path, nil, body)\n"
        "end\n"
    )


def measure(
    masters: int, workers: int, seconds: float, workdir: Path, wrk: str
) -> dict[str, float]:
    nodes = start_cluster(workdir / f"m{masters}", masters)
    service = None
    try:
        seed(nodes)
        service, url = start_service(
            f"redis+cluster://127.0.0.1:{nodes[0].port}", workdir / f"s{masters}", workers
        )
        # Warm-up: each worker opens its cluster client and connections before timing.
        pages = rotating_script(FIRST_PAGE + "&offset=%d", post=False)
        run_wrk(wrk, url + FIRST_PAGE, 2, {}, pages)
        listing = run_wrk(wrk, url + FIRST_PAGE, seconds, {}, pages)
        ingest = run_wrk(
            wrk, url + INGEST_FORMAT % 0, seconds, {}, rotating_script(INGEST_FORMAT, post=True)
        )
        return {
            "errors": listing.errors + ingest.errors,
            "list_rps": listing.requests_per_second,
            "list_p50": listing.p50_ms,
            "ingest_rps": ingest.requests_per_second,
            "ingest_p50": ingest.p50_ms,
        }
    finally:
        if service is not None:
            service.terminate()
            service.wait(30)
        for node in nodes:
            node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster", description=__doc__)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    wrk = ensure_wrk()
    if wrk is None:
        raise SystemExit("bench.cluster needs wrk (apt-get install wrk)")
    workdir = Path(tempfile.mkdtemp(prefix="chatsessions-cluster-bench-"))
    try:
        rows = {m: measure(m, args.workers, args.seconds, workdir, wrk) for m in (1, 3)}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"{args.workers} workers")
    print("| masters | list req/s | list p50 ms | ingest req/s | ingest p50 ms | errors |")
    print("|---:|---:|---:|---:|---:|---:|")
    for masters, row in rows.items():
        print(
            f"| {masters} | {row['list_rps']:,.0f} | {row['list_p50']:.2f} "
            f"| {row['ingest_rps']:,.0f} | {row['ingest_p50']:.2f} | {row['errors']:.0f} |"
        )


if __name__ == "__main__":
    main()
