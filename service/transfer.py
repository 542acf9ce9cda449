"""The data-moving commands as the CLI runs them (``chatsessions export``, ``chatsessions
import ndjson`` and ``chatsessions import pocketpaw``): one Redis client for the run, a
progress bar on a terminal, one summary line at the end, and Ctrl-C a clean stop.

An import restores each session through :meth:`SessionStore.restore_session`'s atomic
scripts, a batch of sessions per round trip: a session there already keeps what it has
and gains only the messages it has not seen, so running an import again changes
nothing, and an interrupted one resumes where it stopped. Each input it skips is one
line on standard error, on a terminal or not.

An export to a file is written beside it as ``FILE.partial`` and renamed to ``FILE``
only once whole: a file by that name is always a complete export, and an interrupted
or failed run leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from .connections import open_redis
from .importers.pocketpaw import NotAPocketPawStore, PocketPawStore
from .importers.records import SessionRecord
from .models import InvalidInput, now_ms
from .ndjson import NamespaceExport, NdjsonError, NdjsonReader, parse_since
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


# Sessions restored per round trip: a batch ends at whichever bound it reaches first.
IMPORT_BATCH_SESSIONS = 100
IMPORT_BATCH_MESSAGES = 2000


@dataclass(slots=True)
class ImportSummary:
    """What an import did, in sessions and messages: imported (new here), already
    present (there before: a second run finds everything so), skipped (bad input)."""

    sessions_imported: int = 0
    sessions_present: int = 0
    sessions_skipped: int = 0
    messages_imported: int = 0
    messages_present: int = 0
    messages_skipped: int = 0

    @property
    def sessions_read(self) -> int:
        return self.sessions_imported + self.sessions_present

    def line(self, source: str, namespace: str) -> str:
        return (
            f"imported {plural(self.sessions_imported, 'session')} and "
            f"{plural(self.messages_imported, 'message')} from {source} into namespace "
            f"{namespace}; already present: {plural(self.sessions_present, 'session')} and "
            f"{plural(self.messages_present, 'message')}; skipped: "
            f"{plural(self.sessions_skipped, 'session')} and "
            f"{plural(self.messages_skipped, 'message')}"
        )


def batches(records: Iterable[SessionRecord]) -> Iterator[list[SessionRecord]]:
    """Records in batches of at most IMPORT_BATCH_SESSIONS sessions, and of at most
    IMPORT_BATCH_MESSAGES messages unless one session alone holds more."""
    batch: list[SessionRecord] = []
    messages = 0
    for record in records:
        if batch and (
            len(batch) >= IMPORT_BATCH_SESSIONS
            or messages + len(record.messages) > IMPORT_BATCH_MESSAGES
        ):
            yield batch
            batch, messages = [], 0
        batch.append(record)
        messages += len(record.messages)
    if batch:
        yield batch


async def restore_all(
    store: SessionStore,
    namespace: str,
    records: Iterable[SessionRecord],
    summary: ImportSummary,
    bar: Bar,
    total: int | None = None,
) -> ImportSummary:
    """Restore ``records`` into ``namespace``, counting into ``summary``."""
    for batch in batches(records):
        outcomes = await store.restore_sessions(namespace, batch, now=now_ms())
        for outcome in outcomes:
            if outcome.created:
                summary.sessions_imported += 1
            else:
                summary.sessions_present += 1
            summary.messages_imported += outcome.stored
            summary.messages_present += outcome.seen
        bar.update(summary.sessions_read, total)
    return summary


def pocketpaw_skips(problems: Iterable[str], summary: ImportSummary) -> None:
    """Count the sessions and messages a PocketPaw reader's problem lines skipped."""
    for problem in problems:
        if problem.endswith("; message skipped"):
            summary.messages_skipped += 1
        elif "; skipped" in problem:
            summary.sessions_skipped += 1


async def import_ndjson(
    store: SessionStore,
    lines: Iterable[bytes],
    namespace: str | None,
    bar: Bar,
    problems: list[str],
) -> tuple[str, ImportSummary]:
    """An NDJSON export restored into ``namespace`` (None: the export's own); its
    problems (bad lines, skipped) go to ``problems``. :class:`NdjsonError` if the
    header is not one."""
    reader = NdjsonReader(lines)
    target = namespace or reader.header.namespace
    summary = await restore_all(store, target, reader.sessions(), ImportSummary(), bar)
    summary.sessions_skipped = len(reader.problems)
    problems.extend(reader.problems)
    return target, summary


async def import_pocketpaw(
    store: SessionStore, source: PocketPawStore, namespace: str, bar: Bar, problems: list[str]
) -> ImportSummary:
    """A PocketPaw memory store restored into ``namespace``; problems to ``problems``."""
    summary = await restore_all(
        store, namespace, source.sessions(), ImportSummary(), bar, len(source)
    )
    pocketpaw_skips(source.problems, summary)
    problems.extend(source.problems)
    return summary


def run_import(url: str, settings: Settings, kind: str, source: str, namespace: str | None) -> int:
    """``chatsessions import ndjson FILE|-`` and ``chatsessions import pocketpaw DIR``."""
    if namespace is not None:
        namespace = check_namespace(namespace)
    shown = on_terminal()
    problems: list[str] = []

    async def run(bar: Bar, lines: Iterable[bytes]) -> tuple[str, ImportSummary]:
        client = open_redis(url, settings.redis_timeout)
        store = SessionStore(client, active_window_ms=settings.active_window_ms)
        try:
            if kind == "ndjson":
                return await import_ndjson(store, lines, namespace, bar, problems)
            target = namespace or settings.default_namespace
            pocketpaw = PocketPawStore(source)
            return target, await import_pocketpaw(store, pocketpaw, target, bar, problems)
        finally:
            await store.aclose()
            await client.aclose()

    try:
        with ExitStack() as stack:
            lines: Iterable[bytes] = ()
            if kind == "ndjson":
                lines = (
                    sys.stdin.buffer
                    if source == STDOUT
                    else stack.enter_context(open(source, "rb"))
                )
            bar = stack.enter_context(Bar(f"import {kind}", "session", shown=shown))
            target, summary = asyncio.run(run(bar, lines))
    except KeyboardInterrupt:
        print(
            "import interrupted; what was imported stays, and running it again resumes",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except (NdjsonError, NotAPocketPawStore) as error:
        print(f"chatsessions: import refused: {error}", file=sys.stderr)
        return EXIT_FAILED
    except StoreUnavailable as error:
        print(f"chatsessions: import stopped: {error}; run it again to resume", file=sys.stderr)
        return EXIT_FAILED
    finally:
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
    if shown:
        print(summary.line("standard input" if source == STDOUT else source, target))
    return 0
