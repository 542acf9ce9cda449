"""Webhooks (SPEC §6): each ``[[webhooks]]`` endpoint receives its namespace's events as
signed JSON POSTs, at least once and in order, retried with backoff until an event is
``webhook_max_age`` old.

What holds, and why:

- **In order, at least once.** An endpoint's events go one at a time, in the stream's
  order, and its stored position (:mod:`service.store.webhook_state`) moves past an
  event only once the endpoint answered 2xx, or the event was filtered out or dropped.
  Whoever delivers next starts after that position: a stop at any moment sends at most
  the one unacknowledged event again and never skips one.
- **One worker per endpoint.** Every worker runs a task per endpoint, but only the
  holder of the endpoint's lease delivers, and the position moves only in a script that
  finds the holder's lease in place. The holder renews the lease before every step, and
  no step takes more than a third of it (a POST is bounded by ``webhook_timeout``, and
  the lease is at least three of those); the others ask for it every third of a lease.
  A clean stop gives the lease up, so another worker takes over at its next ask; a
  crashed worker's lease runs out first.
- **A slow or dead endpoint delays only its own events.** Each endpoint has its own
  task, one POST at a time on a connection of its own, bounded by ``webhook_timeout``.
- **Drops.** A failed attempt is tried again after a pause that doubles each time, with
  jitter; when an attempt fails and the event is ``webhook_max_age`` old or older (its
  time is its id's, the Redis server's clock), the event is dropped with a log line and
  the ``dropped`` metric, and delivery goes on with the next one. An event is always
  tried at least once, however old.
- **A Redis outage pauses delivery.** The task waits, with backoff, and goes on where
  the stored position says; it ends only with the app.

Logs and metrics name an endpoint by its ``name``, never by its URL (which may carry a
secret in its query) and never with its secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass

import aiohttp

from . import __version__
from .connections import background_client, holder_name
from .metrics import WEBHOOK_COUNTERS, Metrics
from .models import now_ms
from .settings import Settings, WebhookConfig
from .store import RedisClient, SessionStore, StoreUnavailable
from .store.events import ChangeEvent
from .store.webhook_state import WebhookState
from .tasks import stopped

log = logging.getLogger("chatsessions.webhooks")

SIGNATURE_HEADER = "X-Chatsessions-Signature"
EVENT_ID_HEADER = "X-Chatsessions-Event-Id"
USER_AGENT = f"chatsessions-webhooks/{__version__}"
# Events read from the stream per round trip.
BATCH = 100
# The longest blocking read for new events; a third of the lease bounds it too.
WAIT_MS = 5_000
# Pauses while Redis cannot answer: from the first, doubling up to the longest.
OUTAGE_PAUSE_FIRST = 0.1
OUTAGE_PAUSE_LONGEST = 5.0


def signature(secret: str, body: bytes) -> str:
    """The ``X-Chatsessions-Signature`` of ``body``: ``sha256=`` and the hex HMAC-SHA256
    of the raw body, keyed with the endpoint's secret."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def event_seconds(event_id: str) -> float:
    """When the event was written, in epoch seconds: its id's milliseconds."""
    return int(event_id.split("-", 1)[0]) / 1000


def doubling(first: float, longest: float, attempt: int) -> float:
    """The pause after failure number ``attempt`` (0 for the first): ``first`` doubled
    each time up to ``longest``, times a random half to whole, so that endpoints (or
    workers) that failed together do not all try again at the same moment."""
    return min(longest, first * 2.0 ** min(attempt, 60)) * random.uniform(0.5, 1.0)


@dataclass(frozen=True, slots=True)
class Timing:
    """How deliveries pace themselves (seconds). ``lease`` is raised to three times
    ``webhook_timeout`` when shorter: a POST must fit in a third of a lease."""

    retry_first: float = 1.0
    retry_longest: float = 300.0
    lease: float = 30.0


def _cancelling() -> bool:
    """Whether the running task was asked to end."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


class LeaseLost(Exception):
    """The endpoint's lease is no longer this worker's, or its position moved under it."""


class Endpoint:
    """Delivers one webhook's events whenever this worker holds the endpoint's lease."""

    def __init__(
        self,
        config: WebhookConfig,
        *,
        owner: str,
        store: SessionStore,
        state: WebhookState,
        http: aiohttp.ClientSession,
        metrics: Metrics,
        max_age: float,
        timeout: float,
        timing: Timing,
    ) -> None:
        self.config = config
        self._owner = owner
        self._store = store
        self._state = state
        self._http = http
        self._metrics = metrics
        self._max_age = max_age
        self._timeout = timeout
        self._timing = timing
        self.lease = max(timing.lease, 3 * timeout)
        self._lease_ms = int(self.lease * 1000)
        self._wait_ms = max(1, min(WAIT_MS, self._lease_ms // 3))
        # The position delivered up to, while holding the lease; None: ask for the lease
        # and read the stored position.
        self._position: str | None = None
        # The event loop's time when the lease was last renewed (taken just before asking).
        self._renewed = 0.0
        self.holding = False

    @property
    def name(self) -> str:
        return self.config.name

    async def run(self) -> None:
        """Deliver until cancelled: Redis outages and lost leases pause it, nothing ends it."""
        outages = 0
        while True:
            try:
                await self._step()
            except Exception as error:
                # A cancellation that landed inside redis-py can come out as another
                # error: the task was asked to end, so it ends.
                if _cancelling():
                    raise asyncio.CancelledError from error
                outages = await self._after(error, outages)
                continue
            if outages:
                log.info("webhook %s: Redis answers again; delivery goes on", self.name)
                outages = 0

    async def _after(self, error: Exception, outages: int) -> int:
        """Log ``error`` and pause as it needs; the position is read again at the next
        step. Answers the Redis outages in a row so far."""
        self._position = None
        if isinstance(error, StoreUnavailable):
            if not outages:
                log.warning(
                    "webhook %s: delivery paused, Redis cannot answer: %s",
                    self.name,
                    error.reason,
                )
            await asyncio.sleep(doubling(OUTAGE_PAUSE_FIRST, OUTAGE_PAUSE_LONGEST, outages))
            return outages + 1
        if isinstance(error, LeaseLost):
            log.info("webhook %s: this worker no longer holds its lease", self.name)
            self.holding = False
            return outages
        # A background task logs what went wrong instead of ending delivery.
        log.error("webhook %s: delivery failed; it goes on shortly", self.name, exc_info=error)
        await asyncio.sleep(OUTAGE_PAUSE_LONGEST)
        return outages

    async def _step(self) -> None:
        """One step: take the lease, or deliver the events after the position (waiting
        for some when there are none yet)."""
        if self._position is None:
            await self._take_lease()
            return
        await self._renew()
        namespace = self.config.namespace
        replay = await self._store.replay(namespace, self._position, limit=BATCH, now=now_ms())
        if replay.reset:
            log.warning(
                "webhook %s: the events after %s are no longer kept (see events_retention); "
                "delivery goes on after the newest, %s",
                self.name,
                self._position,
                replay.newest,
            )
            await self._advance(replay.newest)
            return
        events = replay.events or await self._store.wait_events(
            namespace, self._position, block_ms=self._wait_ms, limit=BATCH, now=now_ms()
        )
        await self._deliver_all(events)

    async def _take_lease(self) -> None:
        asked = asyncio.get_running_loop().time()
        held = await self._state.acquire(
            self.config.namespace, self.name, self._owner, self._lease_ms
        )
        if held is None:
            self.holding = False
            await asyncio.sleep(self.lease / 3 * random.uniform(0.5, 1.0))
            return
        if held.new:
            log.info(
                "webhook %s: new endpoint, starting with the events after %s",
                self.name,
                held.position,
            )
        if not self.holding:
            log.info("webhook %s: this worker delivers, after event %s", self.name, held.position)
        self.holding = True
        self._position = held.position
        self._renewed = asked

    async def _renew(self) -> None:
        """Renew the lease when a third of it has gone since the last renewal."""
        loop = asyncio.get_running_loop()
        asked = loop.time()
        if asked - self._renewed < self.lease / 3:
            return
        held = await self._state.acquire(
            self.config.namespace, self.name, self._owner, self._lease_ms
        )
        if held is None or held.position != self._position:
            raise LeaseLost
        self._renewed = asked

    async def _advance(self, position: str) -> None:
        asked = asyncio.get_running_loop().time()
        moved = await self._state.advance(
            self.config.namespace, self.name, self._owner, position, self._lease_ms
        )
        if not moved:
            raise LeaseLost
        self._position = position
        self._renewed = asked

    async def _deliver_all(self, events: list[ChangeEvent]) -> None:
        """Each event the endpoint wants, in order; the position moves after each one
        delivered or dropped, and once past the events it does not want."""
        wanted = self.config.events
        passed: str | None = None
        for event in events:
            if wanted is not None and event.type not in wanted:
                passed = event.id
                continue
            await self._deliver(event)
            await self._advance(event.id)
            passed = None
        if passed is not None:
            await self._advance(passed)

    async def _deliver(self, event: ChangeEvent) -> None:
        """POST ``event`` until the endpoint acknowledges it, or drop it once it fails
        when ``webhook_max_age`` old."""
        body = event.json()
        headers = {
            "Content-Type": "application/json",
            EVENT_ID_HEADER: event.id,
            SIGNATURE_HEADER: signature(self.config.secret, body),
        }
        attempt = 0
        while True:
            await self._renew()
            if attempt:
                self._metrics.webhook(self.name, "retried")
            failure = await self._post(body, headers)
            if failure is None:
                self._metrics.webhook(self.name, "delivered")
                return
            self._metrics.webhook(self.name, "failed")
            age = time.time() - event_seconds(event.id)
            if age >= self._max_age:
                self._metrics.webhook(self.name, "dropped")
                log.warning(
                    "webhook %s: dropped event %s after %d attempts (last: %s): it is older "
                    "than webhook_max_age (%g s)",
                    self.name,
                    event.id,
                    attempt + 1,
                    failure,
                    self._max_age,
                )
                return
            pause = min(
                doubling(self._timing.retry_first, self._timing.retry_longest, attempt),
                self._max_age - age,
            )
            log.warning(
                "webhook %s: event %s not delivered (%s); trying again in %.1f s",
                self.name,
                event.id,
                failure,
                pause,
            )
            await self._pause(pause)
            attempt += 1

    async def _post(self, body: bytes, headers: dict[str, str]) -> str | None:
        """One attempt: None when the endpoint answered 2xx, else what went wrong, in
        words that never hold the URL."""
        try:
            async with self._http.post(
                self.config.url, data=body, headers=headers, allow_redirects=False
            ) as response:
                if 200 <= response.status < 300:
                    return None
                return f"HTTP {response.status}"
        except TimeoutError:
            return f"no answer within webhook_timeout, {self._timeout:g} s"
        except aiohttp.ClientError as error:
            return type(error).__name__

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, renewing the lease as it comes due."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            await asyncio.sleep(min(left, self.lease / 3))
            await self._renew()

    async def release(self) -> None:
        """Give the lease up, if held, so another worker takes over at once."""
        if self.holding:
            self.holding = False
            await self._state.release(self.config.namespace, self.name, self._owner)


class Webhooks:
    """This worker's deliveries: a task per configured endpoint, under one owner id."""

    def __init__(self, owner: str, endpoints: list[Endpoint]) -> None:
        self.owner = owner
        self.endpoints = endpoints
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    @asynccontextmanager
    async def running(
        cls,
        settings: Settings,
        store: SessionStore,
        metrics: Metrics,
        client: RedisClient | None = None,
        timing: Timing | None = None,
    ) -> AsyncIterator[Webhooks]:
        """Deliver ``settings.webhooks`` until the block ends; then stop every task and
        give up the leases held. ``client``: the Redis client for the delivery state
        (left open), else one opened at ``settings.redis_url`` (closed at the end)."""
        owner = holder_name()
        if not settings.webhooks:
            yield cls(owner, [])
            return
        async with AsyncExitStack() as stack:
            state = WebhookState(background_client(stack, settings, client), settings.redis_timeout)
            stack.push_async_callback(state.aclose)
            http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=settings.webhook_timeout),
                # No limit on connections: each endpoint's task has one POST at a time,
                # and one endpoint's hanging POST must not hold up another's.
                connector=aiohttp.TCPConnector(limit=0),
                cookie_jar=aiohttp.DummyCookieJar(),
                headers={"User-Agent": USER_AGENT},
            )
            stack.push_async_callback(http.close)
            endpoints = [
                Endpoint(
                    config,
                    owner=owner,
                    store=store,
                    state=state,
                    http=http,
                    metrics=metrics,
                    max_age=settings.webhook_max_age,
                    timeout=settings.webhook_timeout,
                    timing=timing or Timing(),
                )
                for config in settings.webhooks
            ]
            for endpoint in endpoints:
                for counter in WEBHOOK_COUNTERS:
                    metrics.webhook(endpoint.name, counter, 0)
            webhooks = cls(owner, endpoints)
            stack.push_async_callback(webhooks._stop, settings.redis_timeout)
            webhooks._tasks = [
                asyncio.create_task(endpoint.run(), name=f"webhook {endpoint.name}")
                for endpoint in endpoints
            ]
            yield webhooks

    async def _stop(self, release_within: float) -> None:
        await stopped(*self._tasks)
        # A lease left behind would keep the other workers waiting until it runs out.
        for endpoint in self.endpoints:
            with suppress(StoreUnavailable, TimeoutError):
                async with asyncio.timeout(release_within):
                    await endpoint.release()
