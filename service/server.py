"""Serving: the listening sockets, what ``serve`` settles with Redis before it listens,
and the event loop that runs the app until SIGINT or SIGTERM.

The order of a start is what a user sees: the port is bound first, so a busy port
fails before a redis-server is started or a token printed; then Redis is reached and
its version checked; only then is a generated token made (and printed) or adopted.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import signal
import socket
from dataclasses import replace

from aiohttp import web

from .app import create_app, make_runner
from .auth import hash_token, new_token
from .connections import open_redis, redacted
from .logs import flush_logs
from .settings import SCOPES, Settings, TokenConfig
from .startup import (
    StartupError,
    check_version,
    claim_generated_token,
    generated_token_hash,
    wait_until_answering,
)
from .store import RedisClient

log = logging.getLogger("chatsessions")

# At start, Redis gets this many redis_timeouts to answer (a container started beside
# it, a server still reading its append-only file) before serve gives up.
START_WAIT_TIMEOUTS = 10

HOW_TO_MAKE_MORE = "More tokens: chatsessions token new --name NAME"
HOW_TO_REPLACE = (
    "replace the generated one: chatsessions token reset-generated, or configure tokens"
)


class PortUnavailable(StartupError):
    """The host and port cannot be listened on."""


def bind_sockets(host: str, port: int, *, reuse_port: bool) -> list[socket.socket]:
    """Bound (not yet listening) sockets for every address of ``host``, as asyncio's
    ``create_server`` binds them; :class:`PortUnavailable` says how to choose another."""
    try:
        infos = socket.getaddrinfo(
            host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except socket.gaierror as error:
        raise PortUnavailable(
            f"cannot listen on host {host!r} ({error.strerror}); "
            f"choose another with --host or CHATSESSIONS_HOST"
        ) from None
    bound: list[socket.socket] = []
    seen = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as error:
        for sock in bound:
            sock.close()
        if error.errno == errno.EADDRNOTAVAIL:
            raise PortUnavailable(
                f"cannot listen on {host}: no such address on this machine; "
                f"choose another with --host or CHATSESSIONS_HOST"
            ) from None
        if error.errno == errno.EADDRINUSE:
            problem = f"port {port} is in use on {host}"
        else:
            problem = f"cannot listen on {host} port {port} ({error.strerror})"
        raise PortUnavailable(
            f"{problem}; choose another port with --port or CHATSESSIONS_PORT"
        ) from None
    return bound


async def prepare(settings: Settings) -> Settings:
    """Reach Redis, check its version, and settle the generated token when no token is
    configured; the settings every worker then serves with."""
    assert settings.redis_url is not None, "the embedded redis-server is started first"
    where = redacted(settings.redis_url)
    client = open_redis(settings.redis_url, settings.redis_timeout)
    try:
        await wait_until_answering(client, settings.redis_timeout * START_WAIT_TIMEOUTS, where)
        version = await check_version(client)
        log.info("Redis %s at %s", version, where)
        flush_logs()
        if not settings.tokens:
            settings = await with_generated_token(client, settings)
    finally:
        await client.aclose()
    return settings


async def with_generated_token(client: RedisClient, settings: Settings) -> Settings:
    """No token configured: accept the one generated on the first start against this
    Redis, making (and printing, once) that token when there is none yet."""
    namespace = settings.default_namespace
    stored = await generated_token_hash(client)
    if stored is not None:
        print(
            f"No token configured: accepting the token generated on the first start "
            f"(namespace {namespace}, all scopes; not shown again). "
            f"{HOW_TO_MAKE_MORE}; {HOW_TO_REPLACE}.",
            flush=True,
        )
    else:
        token = new_token()
        stored, generated = await claim_generated_token(client, hash_token(token))
        if generated:
            print(
                f"No token configured: generated one (namespace {namespace}, all scopes). "
                f"It is shown only this once; every later start accepts it:\n\n"
                f"    {token}\n\n"
                f"{HOW_TO_MAKE_MORE}; {HOW_TO_REPLACE}.",
                flush=True,
            )
        else:
            print(
                f"No token configured: another instance generated one at the same time "
                f"(namespace {namespace}, all scopes; its output shows it); accepting it. "
                f"{HOW_TO_MAKE_MORE}; {HOW_TO_REPLACE}.",
                flush=True,
            )
    generated_config = TokenConfig(
        name="generated", sha256=stored, scopes=frozenset(SCOPES), namespace=namespace
    )
    return replace(settings, tokens=(generated_config,))


async def run_server(
    settings: Settings, sockets: list[socket.socket] | None = None, *, announce: bool = True
) -> None:
    """Serve until SIGINT or SIGTERM, then close every resource the app opened.

    Without ``sockets`` (a worker) the port is bound here, shared with the other
    workers. ``announce`` logs the signal that stopped the service.
    """
    if sockets is None:
        # Workers share the port; a lone process must not share it with a stranger.
        sockets = bind_sockets(settings.host, settings.port, reuse_port=settings.workers > 1)
    app = create_app(settings)
    runner = make_runner(app)
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(signum: int) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal, signum)
    await runner.setup()
    try:
        for sock in sockets:
            await web.SockSite(runner, sock).start()
        tune_garbage_collector()
        log.info("serving on http://%s:%d", settings.host, sockets[0].getsockname()[1])
        flush_logs()
        await stop.wait()
        if announce:
            log.info("shutting down (%s)", received[0])
            flush_logs()
    finally:
        await runner.cleanup()


# Requests allocate containers by the thousand (a batch's items, replies, answers) that
# die with the request: the young generation's threshold is high enough that most die
# before a collection could promote them to the older generations, where they would be
# traversed again. Everything made at start (modules, the app) is frozen out of
# collection.
YOUNG_GENERATION_THRESHOLD = 20_000


def tune_garbage_collector() -> None:
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, older, oldest)


def run_event_loop(
    settings: Settings, sockets: list[socket.socket] | None = None, *, announce: bool = True
) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(run_server(settings, sockets, announce=announce))
    else:
        uvloop.run(run_server(settings, sockets, announce=announce))
