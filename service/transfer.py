"""The data-moving commands as the CLI runs them (``chatsessions export``; the imports
to come): one Redis client for the run, a progress bar on a terminal, one summary line
at the end, and Ctrl-C a clean stop.

An export to a file is written beside it as ``FILE.partial`` and renamed to ``FILE``
only once whole: a file by that name is always a complete export, and an interrupted
or failed run leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import BinaryIO

from .connections import open_redis
from .models import InvalidInput, now_ms
from .ndjson import NamespaceExport, parse_since
from .progress import Bar, on_terminal, plural
from .settings import NAMESPACE_PATTERN, ConfigError, Settings
from .store import SessionStore, StoreUnavailable

# A run stopped by SIGINT exits as shells report a process ended by it.
EXIT_INTERRUPTED = 130
EXIT_FAILED = 1
STDOUT = "-"


def check_namespace(namespace: str) -> str:
    if not NAMESPACE_PATTERN.match(namespace):
        raise ConfigError("--namespace", "use 1-64 lowercase letters, digits, '_' or '-'")
    return namespace


def run_export(
    url: str,
    settings: Settings,
    namespace: str | None,
    updated_since: str | None,
    destination: str | None,
) -> int:
    """``chatsessions export``: the namespace as NDJSON to ``destination`` (a path, or
    standard output for None or ``-``)."""
    namespace = check_namespace(namespace or settings.default_namespace)
    try:
        since = None if updated_since is None else parse_since(updated_since, "T")
    except InvalidInput as error:
        raise ConfigError("--updated-since", error.detail) from None
    target = None if destination in (None, STDOUT) else Path(destination)
    partial = None if target is None else target.with_name(target.name + ".partial")
    output = sys.stdout.buffer if partial is None else partial.open("wb")
    # Data on standard output leaves no room for a bar or a summary there.
    shown = target is not None and on_terminal()
    try:
        with Bar(f"export {namespace}", "session", shown=shown) as bar:
            export = asyncio.run(export_to(url, settings, namespace, since, output, bar))
        output.flush()
    except BaseException as error:
        if partial is not None:
            output.close()
            partial.unlink(missing_ok=True)
        unwritten = "" if target is None else f"; {target} not written"
        if isinstance(error, KeyboardInterrupt):
            print(f"export interrupted{unwritten}", file=sys.stderr)
            return EXIT_INTERRUPTED
        if isinstance(error, StoreUnavailable):
            print(f"chatsessions: export stopped: {error}{unwritten}", file=sys.stderr)
            return EXIT_FAILED
        raise
    if partial is not None and target is not None:
        output.close()
        partial.replace(target)
    if shown:
        print(
            f"exported {plural(export.sessions, 'session')} and "
            f"{plural(export.messages, 'message')} of namespace {namespace} to {target}"
        )
    return 0


async def export_to(
    url: str,
    settings: Settings,
    namespace: str,
    since: int | None,
    output: BinaryIO,
    bar: Bar,
) -> NamespaceExport:
    client = open_redis(url, settings.redis_timeout)
    store = SessionStore(client, active_window_ms=settings.active_window_ms)
    try:
        export = NamespaceExport(store, namespace, now_ms=now_ms(), updated_since_ms=since)
        async for chunk in export.chunks():
            output.write(chunk)
            # With a bound, the namespace's count is not what the export will write.
            bar.update(export.sessions, export.total if since is None else None)
        return export
    finally:
        await store.aclose()
        await client.aclose()
