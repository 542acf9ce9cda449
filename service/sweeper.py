"""Retention (SPEC §7): sessions inactive for more than their namespace's
``retention_days`` are deleted, pinned ones never, by a sweep that every worker runs in
the background and that ``chatsessions sweep`` runs at once.

What holds, and why:

- **Bounded steps.** A sweep is :meth:`SessionStore.sweep`: a hundred sessions a script
  call, each call its own round trip, so requests go between the steps. Each session
  goes as DELETE deletes it, in one script with its ``session.deleted`` event, and a
  step's deletions are counted (``sessions_swept``) as soon as it answers.
- **One sweeper per namespace at a time.** A sweep runs only while its sweeper holds
  the namespace's lease (:mod:`service.store.sweep_lease`): taken only when free,
  renewed every third of its length while the sweep goes, given back at the end. A
  renewal that fails, or finds the lease another's, stops the sweep before its next
  step: a step is sent only while the lease is held. A crashed sweeper's lease runs
  out by itself.
- **Every worker tries, one sweeps.** Each worker asks for each namespace's lease every
  SWEEP_INTERVAL_SECONDS; a worker that finds it taken passes until its next turn, so a
  namespace is swept as long as one worker runs.
- **Outages pause it.** A sweep that meets a Redis outage stops with one log line and
  runs again at the next interval; what it deleted stays deleted and counted. Only the
  app's end stops the task, and then it gives its lease back.
"""

from __future__ import annotations

import asyncio
import logging
import random
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass

from aiohttp import web

from .appkeys import METRICS, SETTINGS, STORE, SWEEP_INTERVAL
from .connections import background_client, holder_name, open_redis
from .metrics import Metrics
from .models import format_time, now_ms
from .progress import Bar, on_terminal, plural
from .settings import NAMESPACE_PATTERN, ConfigError, Settings
from .store import RedisClient, SessionStore, StoreUnavailable
from .store.sweep_lease import SweepLease
from .tasks import stopped

log = logging.getLogger("chatsessions.sweeper")

# Seconds between a worker's sweeps of its namespaces.
SWEEP_INTERVAL_SECONDS = 600.0
# The first sweep comes within this many seconds of the start (or the interval, if
# shorter), at a random moment, so that workers started together ask at different times.
FIRST_SWEEP_WITHIN = 60.0
# Seconds a sweep lease lasts unless renewed; lease_length raises it to three round-trip
# timeouts, so that a renewal asked at a third of it ends, one way or the other, before
# the lease runs out.
SWEEP_LEASE = 60.0
# How often ``chatsessions sweep`` asks again for a lease a worker holds.
LEASE_POLL = 1.0
DAY_MS = 86_400_000
MAX_DAYS = 100 * 365
# A run stopped by SIGINT exits as shells report a process ended by it.
EXIT_INTERRUPTED = 130
EXIT_FAILED = 1


class LeaseLost(Exception):
    """The namespace's sweep lease is no longer this sweeper's."""


def configured_namespaces(settings: Settings) -> list[str]:
    """The namespaces the service knows from its config: the default one, the tokens'
    and those with a retention of their own."""
    return sorted(
        {
            settings.default_namespace,
            *(token.namespace for token in settings.tokens),
            *(namespace for namespace, _ in settings.retention_days_by_namespace),
        }
    )


def swept_namespaces(settings: Settings) -> list[tuple[str, int]]:
    """Each configured namespace with retention on, and its days."""
    found = [(n, settings.retention_for(n)) for n in configured_namespaces(settings)]
    return [(namespace, days) for namespace, days in found if days > 0]


def cutoff(days: int, now: int) -> int:
    """The epoch ms before which a session last active is ``days`` days inactive."""
    return now - days * DAY_MS


def lease_length(settings: Settings) -> float:
    """Seconds a sweep lease lasts: SWEEP_LEASE, or three round-trip timeouts if longer."""
    return max(SWEEP_LEASE, 3 * settings.redis_timeout)


class Holding:
    """A lease held while a sweep goes: renewed every third of its length until
    ``over``; ``failure`` says why it may be held no longer."""

    def __init__(self, lease: SweepLease, namespace: str, owner: str, seconds: float) -> None:
        self._lease = lease
        self._namespace = namespace
        self._owner = owner
        self._seconds = seconds
        self.over = False
        self.failure: Exception | None = None

    async def renew(self) -> None:
        """Renew until ``over`` or a renewal fails; ends by itself, cancelled or not."""
        while True:
            await asyncio.sleep(self._seconds / 3)
            if self.over:
                return
            try:
                held = await self._lease.renew(
                    self._namespace, self._owner, int(self._seconds * 1000)
                )
            except StoreUnavailable as error:
                self.failure = error
                return
            if not held:
                self.failure = LeaseLost(self._namespace)
                return

    def check(self) -> None:
        """Raise why the lease may be held no longer, if it may not."""
        if self.failure is not None:
            raise self.failure


async def leased_sweep(
    store: SessionStore,
    lease: SweepLease,
    namespace: str,
    *,
    before: int,
    owner: str,
    lease_seconds: float,
    progress: Callable[[list[str]], None],
) -> list[str] | None:
    """Sweep ``namespace`` (sessions last active before ``before``, pinned ones kept)
    while holding its lease; the ids deleted, or None when another holds the lease.

    Between two steps the sweep goes on only while the lease's renewals succeed: one
    that fails raises its StoreUnavailable, one that finds the lease another's raises
    LeaseLost, and the steps done are ``progress``'s."""
    if not await lease.acquire(namespace, owner, int(lease_seconds * 1000)):
        return None
    holding = Holding(lease, namespace, owner, lease_seconds)
    renewals = asyncio.create_task(holding.renew())

    def step(ids: list[str]) -> None:
        progress(ids)
        holding.check()

    log.debug("sweep of namespace %s begins (%s)", namespace, owner)
    try:
        return await store.sweep(namespace, before=before, progress=step)
    finally:
        holding.over = True
        log.debug("sweep of namespace %s ends (%s)", namespace, owner)
        await stopped(renewals)
        # A lease not given back runs out by itself.
        with suppress(StoreUnavailable):
            await lease.release(namespace, owner)


class Sweeper:
    """A worker's retention sweeps: every ``interval`` seconds, each namespace with
    retention on, when its lease is free."""

    def __init__(
        self,
        store: SessionStore,
        lease: SweepLease,
        metrics: Metrics,
        namespaces: list[tuple[str, int]],
        *,
        interval: float = SWEEP_INTERVAL_SECONDS,
        lease_seconds: float = SWEEP_LEASE,
        owner: str | None = None,
    ) -> None:
        self._store = store
        self._lease = lease
        self._metrics = metrics
        self.namespaces = namespaces
        self._interval = interval
        self._lease_seconds = lease_seconds
        self.owner = owner or holder_name()

    async def run(self) -> None:
        """Sweep until cancelled; nothing else ends it."""
        await asyncio.sleep(min(FIRST_SWEEP_WITHIN, self._interval) * random.uniform(0.5, 1.0))
        while True:
            for namespace, days in self.namespaces:
                await self.sweep(namespace, days)
            await asyncio.sleep(self._interval)

    async def sweep(self, namespace: str, days: int) -> int:
        """One sweep of ``namespace``, if its lease is free; the sessions it deleted.
        Failures are logged, never raised."""
        deleted = 0

        def counted(step: list[str]) -> None:
            nonlocal deleted
            deleted += len(step)
            if step:
                self._metrics.count("sessions_swept", len(step))

        before = cutoff(days, now_ms())
        try:
            swept = await leased_sweep(
                self._store,
                self._lease,
                namespace,
                before=before,
                owner=self.owner,
                lease_seconds=self._lease_seconds,
                progress=counted,
            )
            if swept is None:
                log.debug(
                    "namespace %s: another sweeper holds its lease (%s)", namespace, self.owner
                )
        except StoreUnavailable as error:
            log.warning(
                "retention sweep of namespace %s stopped after %s, Redis cannot answer: %s; "
                "it runs again in %g s",
                namespace,
                plural(deleted, "session"),
                error.reason,
                self._interval,
            )
        except LeaseLost:
            log.warning(
                "retention sweep of namespace %s stopped after %s: its lease ran out and "
                "another sweeper took it",
                namespace,
                plural(deleted, "session"),
            )
        # A task in the background logs what went wrong instead of ending the sweeps.
        except Exception:
            log.exception(
                "retention sweep of namespace %s failed after %s; it runs again in %g s",
                namespace,
                plural(deleted, "session"),
                self._interval,
            )
        if deleted:
            log.info(
                "retention: deleted %s of namespace %s inactive for more than %s "
                "(last active before %s)",
                plural(deleted, "session"),
                namespace,
                plural(days, "day"),
                format_time(before),
            )
        return deleted


def sweeper_context(
    client: RedisClient | None,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """Run this worker's retention sweeps while the app runs, when a configured
    namespace has retention on; the leases go through ``client`` when one is passed in,
    as the store does, else through a client of its own at ``settings.redis_url``."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        namespaces = swept_namespaces(settings)
        if not namespaces:
            yield
            return
        async with AsyncExitStack() as stack:
            opened = background_client(stack, settings, client)
            lease = SweepLease(opened, settings.redis_timeout)
            stack.push_async_callback(lease.aclose)
            sweeper = Sweeper(
                app[STORE],
                lease,
                app[METRICS],
                namespaces,
                interval=app.get(SWEEP_INTERVAL, SWEEP_INTERVAL_SECONDS),
                lease_seconds=lease_length(settings),
            )
            task = asyncio.create_task(sweeper.run(), name="retention sweep")
            stack.push_async_callback(stopped, task)
            yield

    return context


# --- chatsessions sweep ------------------------------------------------------------------


@dataclass(slots=True)
class SweepRun:
    """What ``chatsessions sweep`` has done so far, for the line an interruption prints."""

    sessions: int = 0


def sweep_plan(
    settings: Settings, namespaces: list[str], days: int | None
) -> list[tuple[str, int]]:
    """Each namespace ``chatsessions sweep`` sweeps (``namespaces``, default: the
    configured ones) with its days (``days``, default: its retention); a line for each
    left out because its retention is off."""
    for namespace in namespaces:
        if not NAMESPACE_PATTERN.match(namespace):
            raise ConfigError("--namespace", "use 1-64 lowercase letters, digits, '_' or '-'")
    if days is not None and not 1 <= days <= MAX_DAYS:
        raise ConfigError("--days", f"expected a whole number of days from 1 to {MAX_DAYS}")
    plan = [
        (namespace, settings.retention_for(namespace) if days is None else days)
        for namespace in namespaces or configured_namespaces(settings)
    ]
    for namespace, kept in plan:
        if not kept:
            print(
                f"namespace {namespace}: retention is off for it, nothing to "
                f"sweep; --days N sweeps it anyway"
            )
    return [(namespace, kept) for namespace, kept in plan if kept]


def run_sweep(url: str, settings: Settings, plan: list[tuple[str, int]], dry_run: bool) -> int:
    """``chatsessions sweep``: each namespace of ``plan`` swept now of the sessions
    inactive for more than its days; a dry run lists them instead."""
    done = SweepRun()
    try:
        asyncio.run(sweep_now(url, settings, plan, dry_run, done))
    except KeyboardInterrupt:
        gone = "found" if dry_run else "deleted"
        print(f"sweep interrupted; {plural(done.sessions, 'session')} {gone}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (StoreUnavailable, LeaseLost) as error:
        reason = error if isinstance(error, StoreUnavailable) else "its lease ran out"
        gone = "found" if dry_run else "deleted"
        print(
            f"chatsessions: sweep stopped: {reason}; {plural(done.sessions, 'session')} "
            f"{gone} before",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return 0


async def sweep_now(
    url: str,
    settings: Settings,
    plan: list[tuple[str, int]],
    dry_run: bool,
    done: SweepRun,
) -> None:
    client = open_redis(url, settings.redis_timeout)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(client.aclose)
        store = SessionStore(client, active_window_ms=settings.active_window_ms)
        stack.push_async_callback(store.aclose)
        lease = SweepLease(client, settings.redis_timeout)
        stack.push_async_callback(lease.aclose)
        owner = f"chatsessions sweep {holder_name()}"
        for namespace, days in plan:
            before = cutoff(days, now_ms())
            found = 0
            with Bar(f"sweep {namespace}", "session", shown=on_terminal()) as bar:

                def progress(step: list[str], bar: Bar = bar) -> None:
                    nonlocal found
                    found += len(step)
                    done.sessions += len(step)
                    if dry_run:
                        for session_id in step:
                            print(session_id)
                    bar.update(found)

                if dry_run:
                    await store.sweep(namespace, before=before, dry_run=True, progress=progress)
                else:
                    await sweep_when_free(
                        store, lease, namespace, before, owner, lease_length(settings), progress
                    )
            inactive = (
                f"inactive for more than {plural(days, 'day')} (last active before "
                f"{format_time(before)}); pinned sessions stay"
            )
            if dry_run:
                print(f"namespace {namespace}: {plural(found, 'session')} would go, {inactive}")
            else:
                print(f"namespace {namespace}: deleted {plural(found, 'session')} {inactive}")


async def sweep_when_free(
    store: SessionStore,
    lease: SweepLease,
    namespace: str,
    before: int,
    owner: str,
    lease_seconds: float,
    progress: Callable[[list[str]], None],
) -> None:
    """Sweep ``namespace`` under its lease, waiting while a worker's sweep holds it."""
    waiting = False
    while True:
        swept = await leased_sweep(
            store,
            lease,
            namespace,
            before=before,
            owner=owner,
            lease_seconds=lease_seconds,
            progress=progress,
        )
        if swept is not None:
            return
        if not waiting:
            print(
                f"namespace {namespace}: another sweep (a serve worker's) holds its lease; "
                "waiting for it to end",
                file=sys.stderr,
            )
            waiting = True
        await asyncio.sleep(LEASE_POLL)
