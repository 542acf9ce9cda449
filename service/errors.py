"""HTTP errors as ``{"detail": …}`` JSON, and the translation of domain errors."""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from aiohttp import web


class ApiError(Exception):
    """An error answer with a sentence the caller can act on."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = dict(headers or {})


def error_response(
    status: int, detail: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps({"detail": detail}),
        content_type="application/json",
        headers=headers,
    )
