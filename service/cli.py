"""chatsessions: the session index for multi-channel chat assistants.

Commands: serve the HTTP API, check and migrate the data in Redis, make tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from importlib import metadata
from types import FrameType

import orjson
from redis.exceptions import RedisError

from . import __version__
from .auth import hash_token, new_token
from .connections import open_redis
from .embedded import DataDirInUse, EmbeddedRedis, EmbeddedRedisError
from .logs import configure_logging, flush_logs
from .progress import Bar, on_terminal, plural
from .server import bind_sockets, prepare, run_event_loop
from .settings import (
    NAMESPACE_PATTERN,
    ConfigError,
    Settings,
    load_settings,
    parse_scopes,
)
from .startup import StartupError, replace_generated_token
from .store import InvariantChecker, migrate_legacy_cards
from .sweeper import run_sweep, sweep_plan
from .tasks import CANCEL_AGAIN_AFTER
from .transfer import run_export, run_import
from .workers import Supervisor

log = logging.getLogger("chatsessions")

EXIT_FAILED = 1
EXIT_CONFIG = 2


def package_version() -> str:
    try:
        return metadata.version("chatsessions")
    except metadata.PackageNotFoundError:
        return __version__


def describe(error: BaseException) -> str:
    """``TypeName: message``, or the type's name alone when the message is empty."""
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived while serve was starting or stopping."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


def _handle_signals(handler: Callable[[int, FrameType | None], None] | signal.Handlers) -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)


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
    # The port first: a busy one fails before a redis-server starts or a token is printed.
    sockets: list[socket.socket] = bind_sockets(settings.host, settings.port, reuse_port=False)
    if settings.workers > 1:
        # Checked only: each worker binds its own socket to share the port.
        for sock in sockets:
            sock.close()
        sockets = []
    # Until the event loop takes the signals over, they unwind the start (stopping the
    # embedded redis-server). What is left once serving has ended is bounded, and a
    # second signal must not cut it short.
    _handle_signals(_interrupt)
    try:
        with ExitStack() as stack:
            try:
                code = start_and_serve(stack, settings, sockets)
            except Interrupted as interrupted:
                _handle_signals(signal.SIG_IGN)
                log.info("shutting down (%s)", interrupted.name)
                code = 0
            finally:
                _handle_signals(signal.SIG_IGN)
    finally:
        for sock in sockets:
            sock.close()
    log.info("stopped")
    flush_logs()
    return code


def prepare_interruptibly(settings: Settings) -> Settings:
    """:func:`prepare` in an event loop of its own, where SIGINT or SIGTERM cancels it and
    is then raised as :class:`Interrupted`: raised by a signal handler in the middle of
    the loop's own work, it would leave connections half made for the loop to trip on."""

    async def guarded() -> Settings:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        received: list[signal.Signals] = []

        def cancel(signum: signal.Signals) -> None:
            received.append(signum)
            cancel_until_done()

        def cancel_until_done() -> None:
            # Again until it ends: redis-py may swallow a cancellation while it connects.
            if not task.done():
                task.cancel()
                loop.call_later(CANCEL_AGAIN_AFTER, cancel_until_done)

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, cancel, signum)
        try:
            return await prepare(settings)
        except asyncio.CancelledError:
            if received:
                raise Interrupted(received[0].name) from None
            raise
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    try:
        return asyncio.run(guarded())
    finally:
        _handle_signals(_interrupt)


def start_and_serve(stack: ExitStack, settings: Settings, sockets: list[socket.socket]) -> int:
    """Start the embedded redis-server (on ``stack``) unless a URL is set, settle Redis and
    the token, then serve in this process or in workers until a signal."""
    if settings.redis_url is None:
        embedded = stack.enter_context(EmbeddedRedis(settings.data_dir))
        settings = replace(settings, redis_url=embedded.url)
    settings = prepare_interruptibly(settings)
    if settings.workers > 1:
        return Supervisor(settings).run()
    run_event_loop(settings, sockets)
    return 0


@contextmanager
def redis_for_command(settings: Settings, url: str | None) -> Iterator[str]:
    """The URL of the Redis a command works on: the one given, the configured one, or
    the embedded one under data_dir (a running serve's, else one started for the
    command and stopped after it)."""
    url = url or settings.redis_url
    if url is not None:
        yield url
        return
    embedded = EmbeddedRedis(settings.data_dir)
    try:
        embedded.start()
    except DataDirInUse:
        yield embedded.url
        return
    try:
        yield embedded.url
    finally:
        embedded.stop()


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


async def reset_generated_token(url: str, redis_timeout: float) -> str:
    client = open_redis(url, redis_timeout)
    try:
        token = new_token()
        await replace_generated_token(client, hash_token(token))
    finally:
        await client.aclose()
    return token


def cmd_token_reset_generated(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    with redis_for_command(settings, args.redis_url) as url:
        token = asyncio.run(reset_generated_token(url, settings.redis_timeout))
    print(
        f"New generated token (namespace {settings.default_namespace}, all scopes), "
        f"shown only this once:\n\n    {token}\n\n"
        f"Restart every chatsessions serve that uses this Redis: from then on they "
        f"accept this token and refuse the one generated before."
    )
    if settings.tokens:
        print("Note: tokens are configured, and serve accepts those instead of this one.")
    return 0


async def check_namespaces(url: str, redis_timeout: float, namespaces: list[str]) -> int:
    client = open_redis(url, redis_timeout)
    try:
        checker = InvariantChecker(client)
        names = namespaces or await checker.namespaces()
        clean = True
        with Bar("check", "namespace", shown=on_terminal()) as bar:
            for position, namespace in enumerate(names):
                bar.update(position, len(names))
                report = await checker.check(namespace)
                state = "ok" if report.ok else plural(len(report.problems), "problem")
                print(
                    f"namespace {namespace}: {plural(report.sessions, 'session')}, "
                    f"{plural(report.messages, 'message')}: {state}"
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
    namespaces = list(args.namespace or [])
    with redis_for_command(settings, args.redis_url) as url:
        return asyncio.run(check_namespaces(url, settings.redis_timeout, namespaces))


async def migrate_namespaces(
    url: str, redis_timeout: float, namespaces: list[str], configured: set[str]
) -> int:
    client = open_redis(url, redis_timeout)
    try:
        names = namespaces or sorted(configured | set(await InvariantChecker(client).namespaces()))
        total = 0
        for position, namespace in enumerate(names, 1):
            label = f"[{position}/{len(names)}] namespace {namespace}"

            def progress(read: int, moved: int, label: str = label) -> None:
                if sys.stdout.isatty():
                    print(f"\r{label}: {read} read, {moved} moved", end="", flush=True)

            moved = await migrate_legacy_cards(client, namespace, progress=progress)
            total += moved
            end = "\r" if sys.stdout.isatty() else ""
            print(
                f"{end}{label}: {plural(moved, 'session')} of an earlier release moved",
                flush=True,
            )
        print(f"done: {plural(total, 'session')} moved in {plural(len(names), 'namespace')}")
        return 0
    finally:
        await client.aclose()


def cmd_migrate(args: argparse.Namespace) -> int:
    """Move sessions stored by earlier releases to this release's layout; safe to run
    again, and while serve is up."""
    settings = load_settings(args.config)
    configured = {settings.default_namespace, *(t.namespace for t in settings.tokens)}
    for namespace in args.namespace or []:
        if not NAMESPACE_PATTERN.match(namespace):
            raise ConfigError("--namespace", "use 1-64 lowercase letters, digits, '_' or '-'")
    with redis_for_command(settings, args.redis_url) as url:
        return asyncio.run(
            migrate_namespaces(url, settings.redis_timeout, list(args.namespace or []), configured)
        )


def cmd_export(args: argparse.Namespace) -> int:
    """Write a namespace as NDJSON (service/ndjson.py) to a file or standard output."""
    settings = load_settings(args.config)
    with redis_for_command(settings, args.redis_url) as url:
        return run_export(url, settings, args.namespace, args.updated_since, args.file)


def cmd_import(args: argparse.Namespace) -> int:
    """Restore an NDJSON export, or bring in a PocketPaw memory store (service/transfer.py)."""
    settings = load_settings(args.config)
    with redis_for_command(settings, args.redis_url) as url:
        return run_import(url, settings, args.import_kind, args.source, args.namespace)


def cmd_sweep(args: argparse.Namespace) -> int:
    """Delete now the sessions retention would delete (service/sweeper.py); with
    --dry-run, list them instead."""
    settings = load_settings(args.config)
    plan = sweep_plan(settings, list(args.namespace or []), args.days)
    if not plan:
        return 0
    with redis_for_command(settings, args.redis_url) as url:
        return run_sweep(url, settings, plan, args.dry_run)


CONFIG_HELP = "TOML config file (default: $CHATSESSIONS_CONFIG, else none)"
REDIS_URL_HELP = (
    "Redis to work on (default: the configured redis_url, else the embedded redis-server "
    "under data_dir: a running serve's, or one started for this command)"
)


def add_redis_options(command: argparse.ArgumentParser) -> None:
    """The options of every command that works on Redis: the config, or a URL over it."""
    command.add_argument("--config", help=CONFIG_HELP)
    command.add_argument("--redis-url", help=REDIS_URL_HELP)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chatsessions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve the HTTP API",
        description="Serve the HTTP API until SIGINT or SIGTERM. With no redis_url configured, "
        "a private redis-server keeps its data under data_dir.",
    )
    serve.add_argument("--config", help=CONFIG_HELP)
    serve.add_argument(
        "--host", help="address to listen on (default: $CHATSESSIONS_HOST, else 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=int, help="port to listen on (default: $CHATSESSIONS_PORT, else 8000)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        help="processes sharing the port (default: $CHATSESSIONS_WORKERS, else 1)",
    )
    serve.set_defaults(run=cmd_serve)

    check = commands.add_parser(
        "check",
        help="verify each namespace's invariants",
        description="Verify each namespace's invariants; exit status 1 when any drifted.",
    )
    add_redis_options(check)
    check.add_argument(
        "--namespace", action="append", help="namespace to check, repeatable (default: all)"
    )
    check.set_defaults(run=cmd_check)

    migrate = commands.add_parser(
        "migrate",
        help="move sessions stored by earlier releases to this release's layout",
        description="Move sessions written by earlier releases to this release's layout. "
        "Safe to run again, and while serve runs.",
    )
    add_redis_options(migrate)
    migrate.add_argument(
        "--namespace",
        action="append",
        help="namespace to migrate, repeatable (default: the configured ones and every "
        "namespace found in Redis)",
    )
    migrate.set_defaults(run=cmd_migrate)

    export = commands.add_parser(
        "export",
        help="write a namespace as NDJSON, one session per line with its messages",
        description="Write a namespace as NDJSON (format: docs/operations.md, Export), most "
        "recently active session first. A FILE is written whole or not at all.",
    )
    add_redis_options(export)
    export.add_argument(
        "--namespace", help="namespace to export (default: the configured default_namespace)"
    )
    export.add_argument(
        "--updated-since",
        metavar="T",
        help="only sessions updated at or after T: an RFC 3339 time (UTC when it has no "
        "zone) or epoch seconds",
    )
    export.add_argument(
        "file", nargs="?", metavar="FILE", help="where to write it; - or none: standard output"
    )
    export.set_defaults(run=cmd_export)

    sweep = commands.add_parser(
        "sweep",
        help="delete now the sessions retention would delete, or list them",
        description="Delete the sessions inactive for more than their namespace's "
        "retention_days (pinned sessions stay), as the background sweep does, now. Safe "
        "while serve runs. With retention off and no --days, it says so and does nothing.",
    )
    add_redis_options(sweep)
    sweep.add_argument(
        "--namespace",
        action="append",
        help="namespace to sweep, repeatable (default: the configured ones: default_namespace, "
        "the tokens' and retention_days_by_namespace's)",
    )
    sweep.add_argument(
        "--days",
        type=int,
        metavar="N",
        help="sweep sessions inactive for more than N days instead of the configured "
        "retention_days",
    )
    sweep.add_argument(
        "--dry-run",
        action="store_true",
        help="delete nothing: list the ids that would go, one per line, and their count",
    )
    sweep.set_defaults(run=cmd_sweep)

    imports = commands.add_parser(
        "import",
        help="restore an NDJSON export, or bring in a PocketPaw memory store",
        description="Restore sessions into Redis. Running an import again changes nothing, "
        "and an interrupted one resumes.",
    )
    import_kinds = imports.add_subparsers(dest="import_kind", required=True, metavar="SOURCE")
    from_ndjson = import_kinds.add_parser(
        "ndjson",
        help="restore a chatsessions NDJSON export",
        description="Restore a chatsessions NDJSON export (chatsessions export): sessions "
        "missing are created as exported, and messages a session lacks are appended.",
    )
    from_ndjson.add_argument(
        "source", metavar="FILE", help="the export to read; - reads standard input"
    )
    from_ndjson.add_argument(
        "--namespace", help="namespace to restore into (default: the export's own)"
    )
    from_pocketpaw = import_kinds.add_parser(
        "pocketpaw",
        help="bring in a PocketPaw memory store",
        description="Bring in a PocketPaw memory store (its sessions/*.json files and "
        "_index.json, usually under ~/.pocketpaw/memory).",
    )
    from_pocketpaw.add_argument(
        "source", metavar="DIR", help="the PocketPaw memory folder, or its sessions/ folder"
    )
    from_pocketpaw.add_argument(
        "--namespace", help="namespace to import into (default: the configured default_namespace)"
    )
    for parser_of_kind in (from_ndjson, from_pocketpaw):
        add_redis_options(parser_of_kind)
        parser_of_kind.set_defaults(run=cmd_import)

    token = commands.add_parser("token", help="make and hash API tokens")
    token_commands = token.add_subparsers(dest="token_command", required=True, metavar="COMMAND")
    new = token_commands.add_parser("new", help="print a new token and its config entry")
    new.add_argument("--name", required=True, help="the token's name, such as telegram-bot")
    new.add_argument(
        "--scopes",
        default="read,write,delete",
        help="comma-separated scopes from read, write, delete (default: all three)",
    )
    new.add_argument(
        "--namespace", default="default", help="the namespace it works in (default: default)"
    )
    new.set_defaults(run=cmd_token_new)
    hashed = token_commands.add_parser("hash", help="print the SHA-256 of a token read from stdin")
    hashed.set_defaults(run=cmd_token_hash)
    reset = token_commands.add_parser(
        "reset-generated",
        help="replace the token serve generated, printing the new one",
        description="Replace the token serve generated when no token was configured. The new "
        "token is printed once; every serve accepts it from its next start.",
    )
    add_redis_options(reset)
    reset.set_defaults(run=cmd_token_reset_generated)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        code: int = args.run(args)
    except ConfigError as error:
        print(f"config error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    except StartupError as error:
        print(f"chatsessions: {error}", file=sys.stderr)
        return error.exit_code
    except EmbeddedRedisError as error:
        print(f"chatsessions: {error}", file=sys.stderr)
        return EXIT_FAILED
    except RedisError as error:
        print(f"chatsessions: Redis failed: {describe(error)}", file=sys.stderr)
        return EXIT_FAILED
    except OSError as error:
        print(f"chatsessions: {describe(error)}", file=sys.stderr)
        return EXIT_FAILED
    return code


if __name__ == "__main__":
    sys.exit(main())
