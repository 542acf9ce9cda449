"""The ``chatsessions`` command: serve, check, token."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Sequence
from dataclasses import replace

import orjson
from aiohttp import web

from .app import create_app, make_runner
from .auth import hash_token, new_token
from .connections import open_redis
from .embedded import EmbeddedRedis, EmbeddedRedisError
from .logs import configure_logging, flush_logs
from .settings import (
    NAMESPACE_PATTERN,
    SCOPES,
    ConfigError,
    Settings,
    TokenConfig,
    load_settings,
    parse_scopes,
)
from .store import InvariantChecker
from .workers import Supervisor

log = logging.getLogger("chatsessions")

EXIT_CONFIG = 2


def with_generated_token(settings: Settings) -> Settings:
    """No token configured: make one for this run and print it, once, to stdout."""
    token = new_token()
    print(
        f"No token configured; this run accepts one generated token "
        f"(namespace {settings.default_namespace}, all scopes):\n\n    {token}\n\n"
        f"Create lasting ones with: chatsessions token new --name NAME",
        flush=True,
    )
    generated = TokenConfig(
        name="generated",
        sha256=hash_token(token),
        scopes=frozenset(SCOPES),
        namespace=settings.default_namespace,
    )
    return replace(settings, tokens=(generated,))


async def run_server(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM, then close every resource the app opened."""
    app = create_app(settings)
    runner = make_runner(app)
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        # Workers share the port; a lone process must not share it with a stranger.
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=settings.workers > 1)
        await site.start()
        tune_garbage_collector()
        log.info("serving on http://%s:%d", settings.host, settings.port)
        flush_logs()
        await stop.wait()
    finally:
        await runner.cleanup()


# Requests allocate containers by the thousand (a batch's items, replies, answers) that
# die with the request. At CPython's default of 700, the young generation was collected
# several times per batch, promoting those containers and traversing them again in the
# older generations: 5 % of a batch's instructions. Everything made at start (modules,
# the app) is frozen out of collection.
YOUNG_GENERATION_THRESHOLD = 20_000


def tune_garbage_collector() -> None:
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, older, oldest)


def run_event_loop(settings: Settings) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(run_server(settings))
    else:
        uvloop.run(run_server(settings))


def cmd_serve(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    overrides = {
        name: value
        for name, value in (("host", args.host), ("port", args.port), ("workers", args.workers))
        if value is not None
    }
    settings = replace(settings, **overrides)
    if settings.workers < 1 or not 0 <= settings.port <= 65535:
        raise ConfigError("--workers/--port", "workers must be 1 or more, port 0-65535")
    configure_logging(settings.log_format)
    if not settings.tokens:
        settings = with_generated_token(settings)
    if settings.workers > 1:
        return Supervisor(settings).run()
    run_event_loop(settings)
    return 0


def cmd_token_new(args: argparse.Namespace) -> int:
    scopes = sorted(parse_scopes("--scopes", args.scopes))
    if not NAMESPACE_PATTERN.match(args.namespace):
        raise ConfigError("--namespace", "use 1-64 lowercase letters, digits, '_' or '-'")
    if not args.name.strip():
        raise ConfigError("--name", "give the token a name, such as telegram-bot")
    token = new_token()
    print(f"token (shown once, store it now): {token}\n")
    print("Add this to your config file:\n")
    # JSON strings and arrays are valid TOML, whatever the name holds.
    print("[[tokens]]")
    print(f"name = {orjson.dumps(args.name).decode()}")
    print(f'sha256 = "{hash_token(token)}"')
    print(f"scopes = {orjson.dumps(scopes).decode()}")
    print(f"namespace = {orjson.dumps(args.namespace).decode()}")
    return 0


def cmd_token_hash(args: argparse.Namespace) -> int:
    token = sys.stdin.readline().strip()
    if not token:
        print("token hash: give the token on standard input", file=sys.stderr)
        return EXIT_CONFIG
    print(hash_token(token))
    return 0


async def check_namespaces(url: str, redis_timeout: float, namespaces: list[str]) -> int:
    client = open_redis(url, redis_timeout)
    try:
        checker = InvariantChecker(client)
        names = namespaces or await checker.namespaces()
        clean = True
        for namespace in names:
            report = await checker.check(namespace)
            state = "ok" if report.ok else f"{len(report.problems)} problem(s)"
            print(
                f"namespace {namespace}: {report.sessions} sessions, "
                f"{report.messages} messages: {state}"
            )
            for problem in report.problems:
                print(f"  - {problem}")
            clean = clean and report.ok
        if not names:
            print("no namespaces found")
        return 0 if clean else 1
    finally:
        await client.aclose()


def cmd_check(args: argparse.Namespace) -> int:
    """Verify the invariants of each namespace; exit 1 when any drifted."""
    settings = load_settings(args.config)
    url = args.redis_url or settings.redis_url
    namespaces = list(args.namespace or [])
    if url is not None:
        return asyncio.run(check_namespaces(url, settings.redis_timeout, namespaces))
    embedded = EmbeddedRedis(settings.data_dir)
    if embedded.socket_path.exists():
        # A running serve holds the data dir: ask its redis-server.
        return asyncio.run(check_namespaces(embedded.url, settings.redis_timeout, namespaces))
    with embedded:
        return asyncio.run(check_namespaces(embedded.url, settings.redis_timeout, namespaces))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chatsessions", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--config", help="TOML config file (else $CHATSESSIONS_CONFIG)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--workers", type=int)
    serve.set_defaults(run=cmd_serve)

    check = commands.add_parser("check", help="verify each namespace's invariants")
    check.add_argument("--config", help="TOML config file (else $CHATSESSIONS_CONFIG)")
    check.add_argument("--redis-url", help="Redis to check (else the configured one)")
    check.add_argument("--namespace", action="append", help="namespace to check (default: all)")
    check.set_defaults(run=cmd_check)

    token = commands.add_parser("token", help="make and hash API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True)
    new = token_commands.add_parser("new", help="print a new token and its config entry")
    new.add_argument("--name", required=True)
    new.add_argument("--scopes", default="read,write,delete")
    new.add_argument("--namespace", default="default")
    new.set_defaults(run=cmd_token_new)
    hashed = token_commands.add_parser("hash", help="print the SHA-256 of a token read from stdin")
    hashed.set_defaults(run=cmd_token_hash)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except EmbeddedRedisError as error:
        print(f"chatsessions: {error}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
