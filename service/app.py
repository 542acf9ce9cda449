"""The application factory and the middlewares every request passes through."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from importlib import resources

from aiohttp import web
from redis.exceptions import RedisError

from .appkeys import (
    ACCESS_LOG,
    METRICS,
    OPENAPI,
    PRINCIPAL,
    RATE_LIMITER,
    ROUTE_SCOPES,
    SETTINGS,
    STORE,
    TOKENS,
)
from .auth import Principal, TokenRegistry, parse_bearer
from .connections import open_redis
from .embedded import EmbeddedRedis
from .errors import ApiError, error_response
from .handlers import Handler
from .logs import FLUSH_INTERVAL, AccessLog, flush_logs
from .metrics import Metrics
from .models import InvalidInput
from .ratelimit import RateLimiter, retry_after_header
from .routes import setup_routes
from .settings import Settings
from .store import (
    ChannelRequired,
    InvalidCursor,
    RedisClient,
    SessionExists,
    SessionNotFound,
    SessionStore,
    StoreUnavailable,
    migrate_legacy_cards,
)

log = logging.getLogger("chatsessions")

BEARER_CHALLENGE = 'Bearer realm="chatsessions"'


def _http_error(request: web.Request, error: web.HTTPException) -> web.Response:
    headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
    match error.status:
        case 404:
            detail = f"No route for {request.method} {request.path}; see /api/openapi.json."
        case 405:
            allowed = error.headers.get("Allow", "")
            detail = f"Method {request.method} is not allowed here; use {allowed}."
        case 413:
            limit = request.app[SETTINGS].max_body_bytes
            detail = f"Body is larger than the limit of {limit} bytes."
        case _:
            detail = error.reason
    return error_response(error.status, detail, headers)


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
            log.warning("redis unavailable: %s", error)
            request.app[METRICS].count("redis_errors")
            return error_response(
                503,
                "Redis is not answering; retry shortly.",
                {"Retry-After": str(request.app[SETTINGS].retry_after)},
            )
        case web.HTTPException() if error.status >= 400:
            return _http_error(request, error)
    log.exception("unhandled error on %s %s", request.method, request.path, exc_info=error)
    return error_response(500, "Internal server error; it has been logged.")


def route_template(request: web.Request) -> str:
    """The route's pattern (``/api/sessions/{session_id}``), never the ids in the path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


CORS_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CORS_HEADERS = "Authorization, Content-Type"


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


def authorize(request: web.Request) -> Principal:
    """The caller of an /api request, who holds the scope its route needs."""
    token = parse_bearer(request.headers.get("Authorization"))
    if token is None:
        raise ApiError(
            401,
            "Missing bearer token: send the header Authorization: Bearer <token>.",
            {"WWW-Authenticate": BEARER_CHALLENGE},
        )
    app = request.app
    principal = app[TOKENS].resolve(token)
    if principal is None:
        raise ApiError(
            401,
            "The bearer token is not valid.",
            {"WWW-Authenticate": BEARER_CHALLENGE + ', error="invalid_token"'},
        )
    scope = app[ROUTE_SCOPES].get(request.match_info.route)
    if scope is not None and scope not in principal.scopes:
        raise ApiError(403, f"This token lacks the {scope} scope this request needs.")
    limiter = app.get(RATE_LIMITER)
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


@web.middleware
async def edge_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """What every request passes through, in one layer (a layer of middleware costs a
    coroutine and a wrapper per request): CORS, the token and its scope on /api,
    errors as JSON, and the request counted, timed and logged once, as answered."""
    started = time.perf_counter()
    status = 500
    try:
        origins = request.app[SETTINGS].cors_origins
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
                    request[PRINCIPAL] = authorize(request)
                response = await handler(request)
            except Exception as error:
                if isinstance(error, web.HTTPException) and error.status < 400:
                    raise
                response = error_answer(request, error)
            if allowed:
                assert origin is not None
                response.headers["Access-Control-Allow-Origin"] = origin
                response.headers["Access-Control-Expose-Headers"] = "Retry-After"
                response.headers.add("Vary", "Origin")
        status = response.status
        return response
    except web.HTTPException as error:
        status = error.status
        raise
    finally:
        elapsed = time.perf_counter() - started
        route = route_template(request)
        # Any token is a valid HTTP method: a label per stranger would grow without bound.
        method = request.method if request.method in KNOWN_METHODS else "OTHER"
        request.app[METRICS].observe(method, route, status, elapsed)
        request.app[ACCESS_LOG].record(method, route, status, elapsed * 1000)


# The server's client has no socket timeout (the store bounds its own round trips), so
# the move at start gets one budget per namespace: a hundred round-trip timeouts. A move
# cut short is logged and goes on at the next start.
MIGRATION_ROUND_TRIPS = 100


async def migrate_first_release(client: RedisClient, settings: Settings) -> None:
    """Cards of the first release move to this layout before the first request."""
    namespaces = {settings.default_namespace, *(t.namespace for t in settings.tokens)}
    for namespace in sorted(namespaces):
        try:
            moved = await asyncio.wait_for(
                migrate_legacy_cards(client, namespace),
                settings.redis_timeout * MIGRATION_ROUND_TRIPS,
            )
        except (RedisError, OSError, TimeoutError) as error:
            log.warning("could not move first-release sessions of %s yet: %s", namespace, error)
            continue
        if moved:
            log.info("moved %d first-release sessions of namespace %s", moved, namespace)


def redis_context(
    client: RedisClient | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Open the Redis client (and the embedded server when no URL is set); close both.

    A client passed in (fakeredis in tests, say) is used as it is and left open.
    """

    async def context(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        if client is not None:
            app[STORE] = SessionStore(client, active_window_ms=settings.active_window_ms)
            yield
            await app[STORE].aclose()
            return
        async with AsyncExitStack() as stack:
            url = settings.redis_url
            if url is None:
                embedded = EmbeddedRedis(settings.data_dir)
                await asyncio.to_thread(embedded.start)
                stack.push_async_callback(asyncio.to_thread, embedded.stop)
                url = embedded.url
            opened = open_redis(url, settings.redis_timeout, socket_timeout=False)
            stack.push_async_callback(opened.aclose)
            app[STORE] = SessionStore(
                opened,
                active_window_ms=settings.active_window_ms,
                timeout=settings.redis_timeout,
            )
            stack.push_async_callback(app[STORE].aclose)
            await migrate_first_release(opened, settings)
            yield

    return context


def make_runner(app: web.Application) -> web.AppRunner:
    """The runner every serve path uses, with the slow-client guard switched on."""
    settings = app[SETTINGS]
    # aiohttp closes a connection whose request is not complete when its keep-alive
    # timer fires, and that timer starts when the connection opens: one setting
    # covers both idle keep-alive connections and headers sent byte by byte.
    return web.AppRunner(
        app, access_log=None, handle_signals=False, keepalive_timeout=settings.client_timeout
    )


async def flusher(app: web.Application) -> AsyncIterator[None]:
    """Twice a second, flushes buffered log lines, so none waits long to be seen, and
    leaves the metrics where other workers read them."""

    def flush() -> None:
        app[ACCESS_LOG].flush()
        flush_logs()
        app[METRICS].flush()

    async def flush_forever() -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            flush()

    task = asyncio.create_task(flush_forever())
    yield
    task.cancel()
    flush()


def create_app(settings: Settings, redis_client: RedisClient | None = None) -> web.Application:
    if not settings.tokens:
        raise ValueError("at least one token must be configured; serve generates one")
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[edge_middleware],
    )
    app[SETTINGS] = settings
    app[TOKENS] = TokenRegistry(settings.tokens)
    app[ROUTE_SCOPES] = {}
    app[METRICS] = Metrics()
    app[ACCESS_LOG] = AccessLog(settings.log_format)
    app[OPENAPI] = resources.files("service").joinpath("openapi.json").read_bytes()
    if settings.rate_limit > 0:
        app[RATE_LIMITER] = RateLimiter(settings.rate_limit)
    setup_routes(app)
    app.cleanup_ctx.append(flusher)
    app.cleanup_ctx.append(redis_context(redis_client))
    return app
