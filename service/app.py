"""The application factory and the resources its requests use (Redis, the log flusher)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from importlib import resources

from aiohttp import web

from .appkeys import (
    ACCESS_LOG,
    METRICS,
    OPENAPI,
    RATE_LIMITER,
    ROUTE_SCOPES,
    SETTINGS,
    STORE,
    TOKENS,
    WEBHOOK_TIMING,
    WEBHOOKS,
)
from .auth import TokenRegistry
from .connections import open_redis
from .edge import allow_origin
from .feed_handlers import end_streams, feed_context
from .logs import FLUSH_INTERVAL, AccessLog, flush_logs
from .metrics import Metrics
from .ratelimit import RateLimiter
from .routes import setup_routes
from .settings import Settings
from .store import (
    RedisClient,
    SessionStore,
    migrate_legacy_cards,
)
from .sweeper import sweeper_context
from .tasks import stopped
from .webhooks import Webhooks

log = logging.getLogger("chatsessions")

# The server's client has no socket timeout (the store bounds its own round trips), so
# the move gets one budget per namespace: a hundred round-trip timeouts. A move cut
# short is logged and goes on at the next start or with `chatsessions migrate`.
MIGRATION_ROUND_TRIPS = 100


async def migrate_first_release(
    client: RedisClient, settings: Settings, budget: float | None = None
) -> None:
    """Sessions stored by earlier releases move to this layout, namespace by namespace,
    while the service serves; ``budget`` seconds per namespace (default: a hundred
    redis_timeouts)."""
    if budget is None:
        budget = settings.redis_timeout * MIGRATION_ROUND_TRIPS
    namespaces = {settings.default_namespace, *(t.namespace for t in settings.tokens)}
    for namespace in sorted(namespaces):
        try:
            async with asyncio.timeout(budget):
                moved = await migrate_legacy_cards(client, namespace)
        except TimeoutError:
            reason: tuple[str, object] = ("TimeoutError", f"not done within {budget:g} s")
        # A task in the background logs what went wrong instead of ending the service.
        except Exception as error:
            reason = (type(error).__name__, error)
        else:
            if moved:
                log.info(
                    "moved %d sessions of namespace %s from an earlier release", moved, namespace
                )
            continue
        log.warning(
            "could not move earlier-release sessions of namespace %s yet (%s: %s); they move "
            "at the next start or with: chatsessions migrate",
            namespace,
            *reason,
        )


def redis_context(
    client: RedisClient | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Open the Redis client at ``settings.redis_url`` and close it at the end; move the
    first release's sessions in the background meanwhile.

    A client passed in (fakeredis in tests, say) is used as it is and left open.
    """

    async def context(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        if client is not None:
            app[STORE] = SessionStore(client, active_window_ms=settings.active_window_ms)
            yield
            await app[STORE].aclose()
            return
        if settings.redis_url is None:
            raise ValueError("redis_url is settled before the app starts (serve does it)")
        async with AsyncExitStack() as stack:
            opened = open_redis(settings.redis_url, settings.redis_timeout, socket_timeout=False)
            stack.push_async_callback(opened.aclose)
            app[STORE] = SessionStore(
                opened,
                active_window_ms=settings.active_window_ms,
                timeout=settings.redis_timeout,
            )
            stack.push_async_callback(app[STORE].aclose)
            # Serving does not wait for the move: a request may find a session still in
            # the old layout until it is done, as it could before the start.
            migration = asyncio.create_task(migrate_first_release(opened, settings))
            stack.push_async_callback(stopped, migration)
            yield

    return context


def webhooks_context(
    client: RedisClient | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Deliver the configured webhooks' events while the app runs (service/webhooks.py);
    their state goes through ``client`` when one is passed in, as the store does."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        running = Webhooks.running(
            app[SETTINGS], app[STORE], app[METRICS], client, app.get(WEBHOOK_TIMING)
        )
        async with running as webhooks:
            app[WEBHOOKS] = webhooks
            yield

    return context


def make_runner(app: web.Application) -> web.AppRunner:
    """The runner every serve path uses, with the slow-client guards switched on (the
    body's and the answer's deadlines are kept by :mod:`service.deadlines`)."""
    settings = app[SETTINGS]
    return web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        # aiohttp closes a connection whose request is not complete when its keep-alive
        # timer fires, and that timer starts when the connection opens: one setting
        # covers both idle keep-alive connections and headers sent byte by byte.
        keepalive_timeout=settings.client_timeout,
        # After an answer given before its body was read (a 408 for a body too slow, a
        # 401, a 413), aiohttp reads and drops the rest of the body so that the client
        # sees the answer, for this long at most, then closes the connection.
        lingering_time=settings.client_timeout,
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
    app = web.Application(client_max_size=settings.max_body_bytes)
    app[SETTINGS] = settings
    app[TOKENS] = TokenRegistry(settings.tokens)
    app[ROUTE_SCOPES] = {}
    app[METRICS] = Metrics()
    app[ACCESS_LOG] = AccessLog(settings.log_format)
    app[OPENAPI] = resources.files("service").joinpath("openapi.json").read_bytes()
    if settings.rate_limit > 0:
        app[RATE_LIMITER] = RateLimiter(settings.rate_limit)
    setup_routes(app)
    if settings.cors_origins:
        app.on_response_prepare.append(allow_origin)
    app.cleanup_ctx.append(flusher)
    app.cleanup_ctx.append(redis_context(redis_client))
    app.cleanup_ctx.append(sweeper_context(redis_client))
    app.cleanup_ctx.append(webhooks_context(redis_client))
    app.cleanup_ctx.append(feed_context)
    app.on_shutdown.append(end_streams)
    return app
