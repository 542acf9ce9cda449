"""What every request passes through: CORS, the token and its scope on /api, errors
as JSON, and the request counted, timed and logged once, as answered.

Each route's handler is wrapped in :func:`edge` when the routes are set up, instead
of going through an aiohttp middleware: with any middleware, aiohttp builds a chain
and runs two more coroutines per request. The wrapper knows its route's template and
scope, so neither is looked up per request. A request that no route takes reaches the
last route, :func:`unmatched`, which answers 404 or 405 through the same wrapper.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import quote, unquote

from aiohttp import web

from .appkeys import ACCESS_LOG, METRICS, PRINCIPAL, RATE_LIMITER, SETTINGS, TOKENS
from .auth import Principal, TokenRegistry, parse_bearer
from .errors import ApiError, error_response
from .handlers import Handler
from .models import InvalidInput
from .ratelimit import RateLimiter, retry_after_header
from .store import (
    ChannelRequired,
    InvalidCursor,
    OutcomeUnknown,
    SessionExists,
    SessionNotFound,
    StoreUnavailable,
)

log = logging.getLogger("chatsessions")

# The metrics and log label of requests no route takes.
UNMATCHED = "unmatched"

BEARER_CHALLENGE = 'Bearer realm="chatsessions"'


def _http_error(request: web.Request, error: web.HTTPException) -> web.Response:
    headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
    match error.status:
        case 404:
            detail = f"No route for {request.method} {request.path}; see /api/openapi.json."
            # A session id with an unencoded '/' splits into segments that no route takes.
            raw = request.rel_url.raw_path
            parts = raw.removeprefix("/api/sessions/").split("/")
            if raw.startswith("/api/sessions/") and len(parts) > 1 and all(parts):
                if len(parts) > 2 and parts[-1] in ("messages", "title", "export"):
                    parts.pop()
                session_id = "/".join(unquote(part) for part in parts)
                encoded = quote(session_id, safe="")
                detail += f" If the session id is {session_id}, percent-encode it: {encoded}."
        case 405:
            allowed = error.headers.get("Allow", "")
            detail = f"Method {request.method} is not allowed here; use {allowed}."
        case 413:
            limit = request.app[SETTINGS].max_body_bytes
            detail = f"Body is larger than the limit of {limit} bytes."
        case _:
            detail = error.reason
    return error_response(error.status, detail, headers)


def unavailable_detail(error: StoreUnavailable) -> str:
    if isinstance(error, OutcomeUnknown):
        return (
            f"The outcome is unknown: {error.reason}, and the write may or may not have "
            "been applied. Repeating the request with the same ids is safe: it is never "
            "applied twice."
        )
    return f"Redis cannot do this now: {error.reason}. Retry shortly."


def retry_after(seconds: int) -> dict[str, str]:
    return {"Retry-After": str(seconds)}


def error_answer(request: web.Request, error: Exception) -> web.Response:
    """Every failure leaves as ``{"detail": …}`` JSON with the status SPEC §3 gives it."""
    match error:
        case ApiError():
            return error_response(error.status, error.detail, error.headers)
        case InvalidInput():
            return error_response(422, error.detail)
        case SessionNotFound():
            return error_response(404, "Session not found")
        case SessionExists():
            return error_response(409, "A session with this id already exists.")
        case InvalidCursor():
            return error_response(
                400, "The cursor is not valid; pass next_cursor from a previous page unchanged."
            )
        case ChannelRequired():
            return error_response(
                422, "channel is required to create a session with its first message."
            )
        case StoreUnavailable():
            log.warning("redis unavailable: %s", error.reason)
            request.app[METRICS].count("redis_errors")
            return error_response(
                503, unavailable_detail(error), retry_after(request.app[SETTINGS].retry_after)
            )
        case web.HTTPException() if error.status >= 400:
            return _http_error(request, error)
        case ConnectionResetError():
            # The client left: nobody reads this answer, and it is no failure of ours.
            return error_response(400, "The client closed the connection.")
    log.exception("unhandled error on %s %s", request.method, request.path, exc_info=error)
    return error_response(500, "Internal server error; it has been logged.")


CORS_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CORS_HEADERS = "Authorization, Content-Type, If-None-Match, Last-Event-ID"
CORS_EXPOSED = "Retry-After, ETag"


async def allow_origin(request: web.Request, response: web.StreamResponse) -> None:
    """An allowed origin's answer says so, set as its headers are sent: a stream (the
    feed, an export) sends them before its handler returns."""
    origin = request.headers.get("Origin")
    origins = request.app[SETTINGS].cors_origins
    if origin is None or not (origin in origins or "*" in origins):
        return
    if "Access-Control-Allow-Origin" not in response.headers:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = CORS_EXPOSED
        response.headers.add("Vary", "Origin")


def preflight_answer(origin: str, allowed: bool) -> web.Response:
    """A browser's preflight needs no token: the origin is allowed or refused."""
    if not allowed:
        return error_response(403, f"Origin {origin} is not allowed; see cors_origins.")
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": CORS_METHODS,
            "Access-Control-Allow-Headers": CORS_HEADERS,
            "Access-Control-Max-Age": "600",
            "Vary": "Origin",
        },
    )


def resolve_bearer(header: str, tokens: TokenRegistry) -> Principal:
    """The principal of an ``Authorization: Bearer <token>`` header; 401 without one."""
    token = parse_bearer(header)
    if token is None:
        raise ApiError(
            401,
            "Missing bearer token: send the header Authorization: Bearer <token>.",
            {"WWW-Authenticate": BEARER_CHALLENGE},
        )
    principal = tokens.resolve(token)
    if principal is None:
        raise ApiError(
            401,
            "The bearer token is not valid.",
            {"WWW-Authenticate": BEARER_CHALLENGE + ', error="invalid_token"'},
        )
    return principal


def authorize(
    request: web.Request, scope: str | None, tokens: TokenRegistry, limiter: RateLimiter | None
) -> Principal:
    """The caller of an /api request, who holds ``scope`` (None: any valid token will do)."""
    header = request.headers.get("Authorization", "")
    connection = request.transport
    principal = None if connection is None else tokens.remembered(connection, header)
    if principal is None:
        principal = resolve_bearer(header, tokens)
        if connection is not None:
            tokens.remember(connection, header, principal)
    if scope is not None and scope not in principal.scopes:
        raise ApiError(403, f"This token lacks the {scope} scope this request needs.")
    if limiter is not None:
        wait = limiter.retry_after(principal.name)
        if wait > 0:
            raise ApiError(
                429,
                "Too many requests for this token; slow down and retry after the pause "
                "that Retry-After gives.",
                {"Retry-After": retry_after_header(wait)},
            )
    return principal


def edge(app: web.Application, handler: Handler, route: str, scope: str | None = None) -> Handler:
    """``handler`` as requests of ``app`` meet it; ``route`` is its template, for metrics
    and the log (never the ids in a path), and ``scope`` what an /api request must hold."""
    # Looked up once, not per request: each app[...] is a call into Python.
    origins = app[SETTINGS].cors_origins
    tokens, metrics, access_log = app[TOKENS], app[METRICS], app[ACCESS_LOG]
    limiter = app.get(RATE_LIMITER)

    async def answer(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter_ns()
        status = 500
        try:
            origin = request.headers.get("Origin") if origins else None
            allowed = origin is not None and (origin in origins or "*" in origins)
            if (
                origin is not None
                and request.method == "OPTIONS"
                and "Access-Control-Request-Method" in request.headers
            ):
                response: web.StreamResponse = preflight_answer(origin, allowed)
            else:
                try:
                    path = request.path
                    if path == "/api" or path.startswith("/api/"):
                        request[PRINCIPAL] = authorize(request, scope, tokens, limiter)
                    response = await handler(request)
                except Exception as error:
                    if isinstance(error, web.HTTPException) and error.status < 400:
                        raise
                    response = error_answer(request, error)
            status = response.status
            return response
        except web.HTTPException as error:
            status = error.status
            raise
        finally:
            elapsed = time.perf_counter_ns() - started
            method = request.method
            # Any token is a valid HTTP method: a label per stranger would grow without bound.
            if method not in KNOWN_METHODS:
                method = "OTHER"
            metrics.observe(method, route, status, elapsed)
            access_log.record(method, route, status, elapsed)

    return answer


async def unmatched(request: web.Request) -> web.StreamResponse:
    """The last route, which takes every path and method: 405 with the methods the path
    allows when another route has the path, else 404."""
    allowed: set[str] = set()
    route = request.match_info.route
    for resource in request.app.router.resources():
        if resource is not route.resource:
            _, methods = await resource.resolve(request)
            allowed |= methods
    if allowed:
        raise web.HTTPMethodNotAllowed(request.method, allowed)
    raise web.HTTPNotFound()
