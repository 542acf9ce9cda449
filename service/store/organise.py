"""The store's organising writes over many sessions or marks (SPEC §7): read marks,
bulk actions, erasure of a person and the retention sweep."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

from .base import StoreBase
from .errors import SessionNotFound
from .events import FIRST
from .keys import keys_of
from .limits import BULK_CHUNK, EVENTS_SCRUB_STEP
from .record import text_of
from .types import BulkOutcome, Session


class OrganiseWrites(StoreBase):
    """Writes that mark, act on many sessions, or erase."""

    async def mark_read(
        self, namespace: str, session_id: str, reader: str, *, up_to: int | None, now: int
    ) -> Session:
        """Mark the session read by ``reader`` up to ``up_to`` messages (all of them now
        when None; never more than it has)."""
        keys = keys_of(namespace)
        args = [session_id, reader, "" if up_to is None else up_to]
        found = await self._transport.call(
            lambda: self._transport.script(self._mark_read, [keys.session(session_id)], args),
            write=True,
        )
        if not found:
            raise SessionNotFound(session_id)
        return self._session(session_id, found, now)

    async def bulk(
        self,
        namespace: str,
        action: str,
        session_ids: Sequence[str],
        *,
        tag: str | None = None,
        dry_run: bool = False,
    ) -> BulkOutcome:
        """``action`` on each session, its own atomic change with its event, BULK_CHUNK
        sessions a script call, the calls in one round trip; a dry run writes nothing."""
        keys = keys_of(namespace)
        head = [action, tag or "", "1" if dry_run else "0", keys.session_prefix]
        calls = [
            [*head, *session_ids[start : start + BULK_CHUNK]]
            for start in range(0, len(session_ids), BULK_CHUNK)
        ]
        replies = await self._transport.call(
            lambda: self._transport.pipelined(self._bulk, keys.index, calls), write=not dry_run
        )
        matched = sum(int(reply[0]) for reply in replies)
        changed = sum(int(reply[1]) for reply in replies)
        missing = [text_of(m) for reply in replies for m in reply[2]]
        return BulkOutcome(matched, changed, missing)

    async def erase_user(self, namespace: str, user: str) -> list[str]:
        """Delete every session of ``user`` (archived or not), BULK_CHUNK a step, then
        the events that carried them, EVENTS_SCRUB_STEP events a step; the ids deleted.
        Each step is its own round trip, so that other requests go between them."""
        keys = keys_of(namespace)
        sets = [keys.listing(False, "user", user), keys.listing(True, "user", user)]
        deleted: list[str] = []
        while True:
            step = await self._transport.call(
                lambda: self._transport.script(
                    self._erase, sets, [keys.session_prefix, BULK_CHUNK]
                ),
                write=True,
            )
            deleted += [text_of(i) for i in step]
            if len(step) < BULK_CHUNK:
                break
        if deleted:
            after = FIRST
            while after:
                args = [after, EVENTS_SCRUB_STEP, *deleted]
                last, _ = await self._transport.call(
                    functools.partial(self._transport.script, self._scrub, [keys.events], args),
                    write=True,
                )
                after = text_of(last)
        return deleted

    async def sweep(
        self,
        namespace: str,
        *,
        before: int,
        dry_run: bool = False,
        progress: Callable[[list[str]], None] | None = None,
    ) -> list[str]:
        """Delete the sessions, archived or not, last active before ``before`` (epoch ms)
        but pinned ones, BULK_CHUNK a step, each step its own round trip; the ids
        deleted (or, in a dry run, that would be). ``progress`` is told each step's."""
        keys = keys_of(namespace)
        swept: list[str] = []
        for half in (keys.index, keys.archived):
            passed = 0
            while True:
                args = [keys.session_prefix, before, passed, BULK_CHUNK, "1" if dry_run else "0"]
                gone, looked = await self._transport.call(
                    functools.partial(self._transport.script, self._sweep, [half], args),
                    write=not dry_run,
                )
                step = [text_of(i) for i in gone]
                swept += step
                if progress is not None:
                    progress(step)
                # Deleted sessions leave the set; those kept (pinned, or all in a dry
                # run) stay in front of the next step's.
                passed += int(looked) - (0 if dry_run else len(step))
                if int(looked) < BULK_CHUNK:
                    break
        return swept
