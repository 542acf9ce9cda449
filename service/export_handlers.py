"""``GET /api/export``: the token's namespace as chatsessions NDJSON (service/ndjson.py),
streamed through :func:`service.deadlines.stream`: each bounded step of the export is
read from Redis only once the client has taken the one before (a client that stops
reading is dropped after client_timeout), so the process holds one step, never the
namespace."""

from __future__ import annotations

from aiohttp import web

from .appkeys import STORE
from .deadlines import stream
from .handlers import namespace_of
from .models import now_ms
from .ndjson import CONTENT_TYPE, NamespaceExport, parse_since
from .store import StoreUnavailable


async def export_namespace(request: web.Request) -> web.StreamResponse:
    raw = request.query.get("updated_since")
    namespace = namespace_of(request)
    export = NamespaceExport(
        request.app[STORE],
        namespace,
        now_ms=now_ms(),
        updated_since_ms=None if raw is None else parse_since(raw),
    )
    response = web.StreamResponse(
        headers={"Content-Disposition": f'attachment; filename="chatsessions-{namespace}.ndjson"'}
    )
    response.content_type = CONTENT_TYPE
    response.charset = "utf-8"
    try:
        return await stream(request, response, export.chunks())
    except StoreUnavailable:
        if not response.prepared:
            raise  # before the first byte: answered 503 as any request is
        # Cut by stream(): the client sees the export incomplete (its chunked body never
        # ends), never a short file that looks whole.
        return response
