"""The baseline: a bare aiohttp app doing the least a handler can do.

``GET /api/sessions`` answers a pre-built body (the bytes of the page being compared);
``POST /api/sessions/{session_id}/messages`` parses the JSON body and answers 201. It
answers the service's own paths, so the harness sends it the very requests it sends the
service (path, query, headers), and it runs as its own process with the same event
loop policy: the ratio between the two measures what chatsessions adds (auth,
validation, Redis, JSON), not a shorter request line or a route without a parameter.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
from aiohttp import web

CREATED = orjson.dumps({"status": "created"})
LIST_PATH = "/api/sessions"
INGEST_PATH = "/api/sessions/{session_id}/messages"


def build_app(body: bytes) -> web.Application:
    async def listing(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def ingest(request: web.Request) -> web.Response:
        orjson.loads(await request.read())
        return web.Response(body=CREATED, status=201, content_type="application/json")

    app = web.Application()
    app.router.add_get(LIST_PATH, listing)
    app.router.add_post(INGEST_PATH, ingest)
    return app


def main() -> None:
    port, body_path = int(sys.argv[1]), Path(sys.argv[2])
    app = build_app(body_path.read_bytes())
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
