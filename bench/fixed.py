"""A bare aiohttp app answering every GET with one fixed answer (status, headers, body),
and ingest as bench/baseline.py does: the baseline of a row whose answer the list's
baseline does not give (a 304, the counts). It runs as its own process on the same
event loop as the service, so that a ratio against it counts what chatsessions does
with a request.

``python -m bench.fixed PORT ANSWER_FILE``: the file holds the answer as JSON
``{"status": 304, "headers": {...}, "body": "..."}``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
from aiohttp import web

from .baseline import CREATED, INGEST_PATH
from .servers import Managed, free_port, wait_http

# Answers 200 whatever the fixed answer is, so that the harness sees it has started.
READY_PATH = "/bench-fixed-ready"


def build_app(status: int, headers: dict[str, str], body: bytes) -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        if status == 304:
            return web.Response(status=304, headers=headers)
        return web.Response(body=body, status=status, headers=headers)

    async def ingest(request: web.Request) -> web.Response:
        orjson.loads(await request.read())
        return web.Response(body=CREATED, status=201, content_type="application/json")

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="ready")

    app = web.Application()
    app.router.add_post(INGEST_PATH, ingest)
    app.router.add_get(READY_PATH, ready)
    app.router.add_get("/{tail:.*}", answer)
    return app


class FixedServer(Managed):
    """The app above in a process of its own, on a free port."""

    def __init__(self, directory: Path, status: int, headers: dict[str, str], body: bytes) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.answer_path = directory / "fixed-answer.json"
        self.answer_path.write_bytes(
            orjson.dumps({"status": status, "headers": headers, "body": body.decode()})
        )
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FixedServer:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.fixed", str(self.port), str(self.answer_path)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_http(self.url + READY_PATH, self.process)
        return self


def main() -> None:
    port, answer_path = int(sys.argv[1]), Path(sys.argv[2])
    answer = orjson.loads(answer_path.read_bytes())
    app = build_app(answer["status"], answer["headers"], answer["body"].encode())
    try:
        import uvloop
    except ImportError:
        web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)
    else:
        web.run_app(
            app,
            host="127.0.0.1",
            port=port,
            access_log=None,
            print=None,
            loop=uvloop.new_event_loop(),
        )


if __name__ == "__main__":
    main()
