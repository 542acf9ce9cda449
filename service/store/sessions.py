"""SessionStore: the one store API the handlers and the CLI see."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Sequence
from typing import Any, NamedTuple, cast

import orjson

from ..coalesce import Coalescer
from ..importers.records import SessionRecord
from ..models import DEFAULT_TITLE, MessageIn, format_time
from ..redis_link import Command, pack, pack_rest, pack_start
from .cursor import (
    Cursor,
    SearchCursor,
    decode_cursor,
    decode_position,
    decode_search_cursor,
    encode_cursor,
    encode_position,
    encode_search_cursor,
)
from .errors import (
    ChannelRequired,
    SessionExists,
    SessionNotFound,
    StoreError,
    StoreUnavailable,
)
from .fold import fold_case, reads_same_in_json
from .keys import Keys, keys_of
from .limits import (
    BATCH_CHUNK,
    FIELDS_SEPARATOR,
    LIST_SCAN_BOUND,
    PAGE_BYTES,
    SEARCH_STEP_BYTES,
    SEARCH_STEP_BYTES_FOLDED,
    SEARCH_STEP_MESSAGES,
    SEARCH_STEP_SESSIONS,
    SEARCH_STEPS,
)
from .live import LiveReads, version_commands, version_of
from .organise import OrganiseWrites
from .record import (
    READ_MARK,
    TITLE_DEFAULT,
    TITLE_USER,
    IngestResult,
    auto_title_arg,
    marked_pairs,
    message_of,
    message_out,
    page_of,
    scan_page_of,
    script_page,
    session_of,
    session_of_fields,
    stored_message,
    stored_of,
    text_of,
)
from .types import (
    NO_FILTER,
    BatchOutcome,
    ListFilter,
    Message,
    MessagePage,
    PageQuery,
    RestoreOutcome,
    SearchHit,
    SearchPage,
    Session,
    SessionChange,
    SessionPage,
)


class PageCommands(NamedTuple):
    """A sorted set's page commands (SessionStore._sorted_page), packed as far as they
    are the same for every page: each page packs only its own numbers."""

    total: bytes
    # ZCOUNT's start, to end with the active cutoff and +inf
    active_from: bytes
    # SORT's start (its options may come in any order), to end with LIMIT's two numbers
    sort: bytes


def page_sort(zset: str, item_pattern: str, mark_pattern: str = "") -> tuple[str, ...]:
    """SORT of a page of ``zset`` in rank order with each session's id and item (and its
    read mark, with a ``mark_pattern``), up to LIMIT's two numbers. SORT, not SORT_RO
    (Redis 7.0 and later): without STORE it only reads, on 6.2 too."""
    marks = ("GET", mark_pattern) if mark_pattern else ()
    return ("SORT", zset, "BY", "nosort", "DESC", "GET", "#", "GET", item_pattern, *marks, "LIMIT")


@functools.lru_cache(maxsize=1024)
def page_commands(zset: str, item_pattern: str, mark_pattern: str) -> PageCommands:
    sort = page_sort(zset, item_pattern, mark_pattern)
    return PageCommands(
        total=pack([("ZCARD", zset)]),
        active_from=pack_start(("ZCOUNT", zset), 2),
        sort=pack_start(sort, 2),
    )


@functools.lru_cache(maxsize=1024)
def ingest_head(namespace: str, sha: str) -> tuple[Any, ...]:
    """INGEST's call up to the message's two arguments: the same for every message of
    a namespace."""
    keys = keys_of(namespace)
    return ("EVALSHA", sha, 1, keys.index, *keys.ingest_prefixes(), DEFAULT_TITLE)


@functools.lru_cache(maxsize=1024)
def ingest_start(namespace: str, sha: str) -> bytes:
    """:func:`ingest_head` packed once (see SessionStore._ingest_command)."""
    return pack_start(ingest_head(namespace, sha), 2)


class SessionStore(LiveReads, OrganiseWrites):
    """Sessions, their index and their messages, in Redis, one round trip per call."""

    @functools.cached_property
    def _pages(self) -> Coalescer[PageQuery, SessionPage]:
        """Overlapping equal page reads, sharing one round trip (made on first use)."""
        return Coalescer(self._read_page)

    def list_sessions(
        self,
        namespace: str,
        *,
        limit: int,
        now: int,
        offset: int | None = None,
        cursor: str | None = None,
        channel: str | None = None,
        active: bool | None = None,
        filters: ListFilter = NO_FILTER,
    ) -> Awaitable[SessionPage]:
        """A page as of ``now`` or later: overlapping equal queries share one round trip
        (:mod:`service.coalesce`), each reading Redis after it arrived. A page one sorted
        set holds is read by rank (offset or cursor); other filters are found by a
        bounded walk from the cursor (:meth:`_scan_page`; offset 0 only).

        Not a coroutine: the caller awaits the shared read itself, one coroutine less on
        every page."""
        query = PageQuery(namespace, limit, offset, cursor, channel, active, filters)
        return self._pages.read(query, now)

    async def _read_page(self, query: PageQuery, now: int) -> SessionPage:
        namespace, limit, offset, cursor, channel, active, filters = query
        keys = keys_of(namespace)
        cutoff = now - self._active_window_ms
        after = decode_cursor(cursor) if cursor is not None else None
        if filters.scans(channel):
            return await self._scan_page(keys, query, after, cutoff)
        [(kind, value)] = filters.positive(channel) or [("", "")]
        zset = keys.listing(bool(filters.archived), kind, value)
        if not (
            self._transport.cluster or active is False or (after is not None and after.rank is None)
        ):
            start = after.rank if after is not None and after.rank is not None else offset or 0
            try:
                return await self._transport.call(
                    lambda: self._sorted_page(
                        keys, zset, start, limit, after, active, cutoff, filters.reader
                    )
                )
            except StoreUnavailable as error:
                # Redis out of memory refuses every command queued in a MULTI, and SORT
                # on 6.2: the page script, which only reads, still runs.
                if error.code != "OOM":
                    raise
        # The inactive filter's first rank is only known inside Redis; redis-py's cluster
        # client cannot send a MULTI/EXEC from asyncio (it nests event loops).
        page_keys = [zset, keys.version, keys.index, keys.archived]
        args = self._page_args(keys, limit, offset, after, active, cutoff, filters.reader)
        reply = await self._transport.call(
            lambda: self._transport.script(self._page, page_keys, args)
        )
        page = script_page(reply, reader=filters.reader is not None)
        page.version = version_of(reply[6], int(reply[7]))
        return page

    async def _scan_page(
        self, keys: Keys, query: PageQuery, after: Cursor | None, cutoff: int
    ) -> SessionPage:
        filters = query.filters
        halves = []
        for archived in (False, True) if filters.archived is None else (filters.archived,):
            half: dict[str, Any] = {
                "base": keys.listing(archived),
                "sets": [
                    keys.listing(archived, kind, value)
                    for kind, value in filters.positive(query.channel)
                ],
            }
            if filters.pinned is False:
                half["unpinned"] = keys.listing(archived, "pinned")
            halves.append(half)
        spec: dict[str, Any] = {
            "halves": halves,
            "cutoff": str(cutoff),
            "limit": query.limit,
            "bound": LIST_SCAN_BOUND,
            "session_prefix": keys.session_prefix,
            "unread": filters.unread,
        }
        if filters.reader is not None:
            spec["reader"] = READ_MARK + filters.reader
        if query.active is not None:
            spec["active"] = query.active
        if after is not None:
            spec["after"] = [str(after.score), after.member]
        reply = await self._transport.call(
            lambda: self._transport.script(
                self._filter, [keys.version, keys.index, keys.archived], [orjson.dumps(spec)]
            )
        )
        total, exact, score, member, matches, latest, all_active = reply
        page = scan_page_of(
            int(total), matches, cutoff, reader=filters.reader is not None, exact=bool(exact)
        )
        if member:
            page.next_cursor = encode_cursor(Cursor(int(score), text_of(member)))
        page.version = version_of(latest, int(all_active))
        return page

    def _page_args(
        self,
        keys: Keys,
        limit: int,
        offset: int | None,
        after: Cursor | None,
        active: bool | None,
        cutoff: int,
        reader: str | None,
        expected_rank: int | None = None,
    ) -> list[Any]:
        active_filter = "" if active is None else ("1" if active else "0")
        rank = "" if expected_rank is None else str(expected_rank - 1)
        member, score = (after.member, str(after.score)) if after else ("", "")
        rest = [str(limit), "" if after else str(offset or 0), active_filter, str(cutoff)]
        rest.append(keys.session_prefix)
        if reader is not None:
            rest.append(READ_MARK + reader)
        return [rank, member, score, FIELDS_SEPARATOR.join(rest)]

    def _sorted_page_commands(
        self, zset: str, sort_patterns: tuple[str, str], start: int, limit: int, cutoff: int
    ) -> list[Command]:
        """ZCARD, ZCOUNT of the active and the SORT of the page: packed for the link
        (their fixed arguments once per sorted set), as arguments for redis-py.
        ``sort_patterns``: SORT's item pattern and read mark pattern ('' for none)."""
        if not self._transport.packs:
            return [
                ("ZCARD", zset),
                ("ZCOUNT", zset, cutoff, "+inf"),
                (*page_sort(zset, *sort_patterns), start, limit),
            ]
        page = page_commands(zset, *sort_patterns)
        return [
            page.total,
            pack_rest(page.active_from, b"%d" % cutoff, b"+inf"),
            pack_rest(page.sort, b"%d" % start, b"%d" % limit),
        ]

    async def _sorted_page(
        self,
        keys: Keys,
        zset: str,
        start: int,
        limit: int,
        after: Cursor | None,
        active: bool | None,
        cutoff: int,
        reader: str | None,
    ) -> SessionPage:
        """A page from ranks ``start`` on, read by SORT in one transaction; with a
        ``reader``, SORT reads each session's read mark too.

        After a cursor, the page script rides along: it answers -2 when the cursor's
        session still sorts just before ``start`` (the SORT's page is then right),
        else it builds the page itself. Either way the page is one round trip.
        """
        mark_pattern = "" if reader is None else keys.sort_pattern(READ_MARK + reader)
        commands = self._sorted_page_commands(
            zset, (keys.item_pattern, mark_pattern), start, limit, cutoff
        )
        if after is not None:
            args = self._page_args(keys, limit, None, after, active, cutoff, reader, start)
            page_keys = (zset, keys.version, keys.index, keys.archived)
            commands.append(("EVALSHA", self._page.sha, 4, *page_keys, *args))
        replies = await self._transport.transaction(
            [*commands, *version_commands(keys, cutoff)], self._page
        )
        total, n_active, flat = int(replies[0]), int(replies[1]), replies[2]
        latest, index_active, archived_active = replies[-3:]
        if after is not None and replies[3] != -2:
            page = script_page(replies[3], reader=reader is not None)
        else:
            if reader is not None:
                flat = marked_pairs(flat)
            end = total if active is None else n_active
            size = max(min(end - start, limit), 0)
            page = page_of(end, start, n_active, flat[: 2 * size], more=start + size < end)
        page.version = version_of(latest, int(index_active) + int(archived_active))
        return page

    async def get_session(self, namespace: str, session_id: str, *, now: int) -> Session:
        session, _ = await self.get_session_version(namespace, session_id, now=now)
        return session

    async def get_session_version(
        self, namespace: str, session_id: str, *, now: int
    ) -> tuple[Session, str]:
        """The session and the namespace's version (:func:`version_of`) as it was read."""
        keys = keys_of(namespace)
        read_keys = [keys.session(session_id), keys.version, keys.index, keys.archived]
        found = await self._transport.call(
            lambda: self._transport.script(
                self._read, read_keys, [session_id, now - self._active_window_ms]
            )
        )
        if not found:
            raise SessionNotFound(session_id)
        return self._session(session_id, found[:2], now), version_of(found[2], int(found[3]))

    def _ingest_command(
        self, namespace: str, session_id: str, message: MessageIn, timestamp: str
    ) -> Command:
        """INGEST's call: its key and the namespace's prefixes packed once per namespace
        (they are the same for every message), then the message's two arguments; as
        arguments for redis-py, which packs itself.
        ``timestamp`` is the message's time as text."""
        fields = FIELDS_SEPARATOR.join(
            [
                session_id,
                message.channel or "",
                message.id,
                str(message.timestamp_ms),
                timestamp,
                auto_title_arg(message),
                message.user or "",
                self._operation_id(),
            ]
        ).encode()
        stored = stored_message(message)
        if not self._transport.packs:
            return (*ingest_head(namespace, self._ingest.sha), fields, stored)
        return pack_rest(ingest_start(namespace, self._ingest.sha), fields, stored)

    def _ingest_result(
        self, reply: Sequence[Any], session_id: str, message: MessageIn, timestamp: str, now: int
    ) -> IngestResult:
        status = int(reply[0])
        if status < 0:
            raise ChannelRequired(session_id)
        _, item, score, stored, metadata, title_source = reply
        created = status == 1
        return IngestResult(
            created=created,
            # Stored just now, it is the message sent; a repeat answers with the first one.
            message=message_out(message, timestamp) if created else message_of(stored),
            session_id=session_id,
            item=item,
            title_source=text_of(title_source),
            active=self._active(score, now),
            metadata_json=metadata or None,
        )

    async def add_message(
        self, namespace: str, session_id: str, message: MessageIn, *, now: int
    ) -> IngestResult:
        timestamp = format_time(message.timestamp_ms)
        command = self._ingest_command(namespace, session_id, message, timestamp)
        reply = await self._transport.call(
            lambda: self._transport.script_command(self._ingest, command), write=True
        )
        return self._ingest_result(reply, session_id, message, timestamp, now)

    async def add_messages(
        self, namespace: str, items: Sequence[tuple[str, MessageIn]], *, now: int
    ) -> list[BatchOutcome | StoreError]:
        """Ingest many messages in one pipelined round trip, in order.

        Messages go BATCH_CHUNK to a script call; each message is applied atomically
        and in order, as if sent one by one. A session's messages are brought together
        (keeping their order; sessions do not affect each other), so that the script
        reads and writes each session once per run of its messages. The scripts are
        sent by SHA directly, not through redis-py's pipeline script support, which
        would add a SCRIPT EXISTS round trip to every batch.
        """
        if not items:
            return []
        keys = keys_of(namespace)
        head: list[Any] = [
            keys.session_prefix,
            keys.messages_prefix,
            keys.seen_prefix,
            DEFAULT_TITLE,
        ]
        session_ids = [session_id for session_id, _ in items]
        order = sorted(range(len(items)), key=session_ids.__getitem__)
        times = [format_time(message.timestamp_ms) for _, message in items]
        rows = []
        for position in order:
            message = items[position][1]
            rows.append(
                [
                    session_ids[position],
                    message.channel or "",
                    message.id,
                    str(message.timestamp_ms),
                    times[position],
                    stored_message(message).decode(),
                    auto_title_arg(message),
                    message.user or "",
                ]
            )
        calls = [
            [
                *head,
                orjson.dumps(rows[start : start + BATCH_CHUNK]),
                keys.operation(self._operation_id()),
            ]
            for start in range(0, len(rows), BATCH_CHUNK)
        ]
        replies = await self._transport.call(
            lambda: self._transport.pipelined(self._ingest_many, keys.index, calls), write=True
        )
        # Each reply holds (status, message count, stored message) per message.
        flat = iter([value for reply in replies for value in reply])
        results: list[BatchOutcome | StoreError | None] = [None] * len(items)
        for position, (status, count, stored) in zip(
            order, zip(flat, flat, flat, strict=True), strict=True
        ):
            if status < 0:
                results[position] = ChannelRequired(session_ids[position])
            elif status == 1:
                stored_as = message_out(items[position][1], times[position])
                results[position] = BatchOutcome(True, stored_as, count)
            else:
                results[position] = BatchOutcome(False, message_of(stored), count)
        return cast(list[BatchOutcome | StoreError], results)

    async def restore_session(
        self, namespace: str, record: SessionRecord, *, now: int
    ) -> RestoreOutcome:
        """Restore one session exactly as ``record`` gives it (see :meth:`restore_sessions`)."""
        [outcome] = await self.restore_sessions(namespace, [record], now=now)
        return outcome

    async def restore_sessions(
        self, namespace: str, records: Sequence[SessionRecord], *, now: int
    ) -> list[RestoreOutcome]:
        """Restore sessions as their records give them (an import), in one pipelined
        round trip: a session absent is created with the record's fields, and messages
        whose ids the session has not seen are appended in order, as ingest stores them.
        Running it again changes nothing.

        Each session goes in script calls of at most BATCH_CHUNK messages and PAGE_BYTES
        of stored messages (one message at least), each call atomic: the first creates
        the session, the later ones append. ``now`` is the caller's clock; the stored
        times are the record's."""
        del now  # every time written is the record's own
        if not records:
            return []
        keys = keys_of(namespace)
        head = [keys.session_prefix, keys.messages_prefix, keys.seen_prefix]
        calls: list[list[Any]] = []
        owners: list[int] = []
        for position, record in enumerate(records):
            organisation = {
                "pinned": record.pinned,
                "archived": record.archived,
                "tags": list(record.tags),
                "user": record.user,
            }
            session = [
                *head,
                orjson.dumps(organisation),
                record.id,
                record.title,
                record.title_source,
                record.channel,
                format_time(record.created_at_ms),
                format_time(record.updated_at_ms),
                str(record.updated_at_ms),
                orjson.dumps(record.metadata) if record.metadata else "",
            ]
            messages = record.messages
            start = 0
            while True:
                # A chunk: up to BATCH_CHUNK messages and PAGE_BYTES stored, one at least.
                chunk: list[Any] = []
                size, end = 0, start
                latest: int | None = None
                while end < len(messages) and len(chunk) < 2 * BATCH_CHUNK:
                    message = messages[end]
                    stored = stored_of(
                        message.id,
                        message.role,
                        message.content,
                        message.timestamp_ms,
                        message.metadata,
                    )
                    if chunk and size + len(stored) > PAGE_BYTES:
                        break
                    chunk += [message.id, stored]
                    size += len(stored)
                    if latest is None or message.timestamp_ms > latest:
                        latest = message.timestamp_ms
                    end += 1
                bound = ["", ""] if latest is None else [str(latest), format_time(latest)]
                calls.append([*session, *bound, *chunk])
                owners.append(position)
                start = end
                if start >= len(messages):
                    break
        replies = await self._transport.call(
            lambda: self._transport.pipelined(self._restore, keys.index, calls), write=True
        )
        created = [False] * len(records)
        stored_count = [0] * len(records)
        seen = [0] * len(records)
        for owner, (made, appended, seen_before) in zip(owners, replies, strict=True):
            created[owner] = created[owner] or made == 1
            stored_count[owner] += int(appended)
            seen[owner] += int(seen_before)
        return [
            RestoreOutcome(c, s, n) for c, s, n in zip(created, stored_count, seen, strict=True)
        ]

    async def search(
        self, namespace: str, query: str, *, limit: int, now: int, cursor: str | None = None
    ) -> SearchPage:
        """Sessions whose title or messages hold ``query``, most recent first, found in
        bounded steps (one script call each, on a connection of its own so that cheap
        requests never queue behind one); ``next_cursor`` goes on where a page stopped."""
        keys = keys_of(namespace)
        at = decode_search_cursor(cursor) if cursor is not None else None
        head = [
            fold_case(query),
            0,
            SEARCH_STEP_SESSIONS,
            SEARCH_STEP_MESSAGES,
            SEARCH_STEP_BYTES if query.isascii() else SEARCH_STEP_BYTES_FOLDED,
            keys.messages_prefix,
            keys.session_prefix,
            "1" if reads_same_in_json(query) else "0",
        ]
        wide = "0" if query.isascii() else "1"
        hits: list[SearchHit] = []
        for _ in range(SEARCH_STEPS):
            head[1] = limit - len(hits)
            where = ["", "", 0] if at is None else [at.score, at.member, at.scanned]
            args = [*head, *where, wide]
            reply = await self._transport.call(
                functools.partial(
                    self._transport.script, self._search, [keys.index], args, shared=False
                ),
                shared=False,
            )
            complete, score, member, scanned = reply[:4]
            for position in range(4, len(reply), 4):
                hit_id, hit_score, item, stored = reply[position : position + 4]
                hits.append(
                    SearchHit(
                        session=session_of(
                            text_of(hit_id), item, "", self._active(hit_score, now), None
                        ),
                        message=message_of(stored) if stored else None,
                    )
                )
            if complete:
                return SearchPage(hits, None)
            if member:
                at = SearchCursor(int(score), text_of(member), int(scanned))
            if len(hits) >= limit:
                break
        assert at is not None
        return SearchPage(hits, encode_search_cursor(at))

    async def messages_from(
        self, namespace: str, session_id: str, *, first: int, count: int
    ) -> tuple[int, list[Message]]:
        """Messages from ``first`` on in arrival order, ``count`` at most and fewer when
        their bytes would pass PAGE_BYTES, and the session's total."""
        keys = keys_of(namespace)
        reply = await self._transport.call(
            lambda: self._transport.script(
                self._messages_range,
                [keys.session(session_id), keys.messages(session_id)],
                [first, count, PAGE_BYTES],
                shared=False,
            ),
            shared=False,
        )
        total = int(reply[0])
        if total < 0:
            raise SessionNotFound(session_id)
        return total, [message_of(m) for m in reply[1:]]

    async def create_session(
        self,
        namespace: str,
        session_id: str,
        *,
        channel: str,
        title: str | None,
        metadata: dict[str, Any] | None,
        now: int,
        user: str | None = None,
    ) -> Session:
        keys = keys_of(namespace)
        args = [
            session_id,
            now,
            format_time(now),
            title or DEFAULT_TITLE,
            TITLE_USER if title else TITLE_DEFAULT,
            channel,
            user or "",
            orjson.dumps(metadata) if metadata else "",
        ]
        create_keys = [keys.session(session_id), keys.operation(self._operation_id())]
        created = await self._transport.call(
            lambda: self._transport.script(self._create, create_keys, args), write=True
        )
        if not created:
            raise SessionExists(session_id)
        return session_of_fields(session_id, created, True)

    async def update_session(
        self, namespace: str, session_id: str, change: SessionChange, *, now: int
    ) -> Session:
        """Apply ``change`` (only what it sets) in one script; unchanged is no write."""
        keys = keys_of(namespace)
        fields = {
            name: value
            for name, value in (
                ("title", change.title),
                ("pinned", change.pinned),
                ("archived", change.archived),
                ("tags", None if change.tags is None else list(change.tags)),
            )
            if value is not None
        }
        metadata = (
            "-"
            if change.metadata is None
            else (orjson.dumps(change.metadata) if change.metadata else "")
        )
        args = [session_id, orjson.dumps(fields), metadata]
        found = await self._transport.call(
            lambda: self._transport.script(self._patch, [keys.session(session_id)], args),
            write=True,
        )
        if not found:
            raise SessionNotFound(session_id)
        return self._session(session_id, found[:2], now)

    async def rename_session(
        self, namespace: str, session_id: str, title: str, *, now: int
    ) -> Session:
        return await self.update_session(namespace, session_id, SessionChange(title=title), now=now)

    async def delete_session(self, namespace: str, session_id: str) -> None:
        keys = keys_of(namespace)
        delete_keys = [keys.session(session_id), keys.operation(self._operation_id())]
        deleted = await self._transport.call(
            lambda: self._transport.script(self._delete, delete_keys, [session_id]),
            write=True,
        )
        if not deleted:
            raise SessionNotFound(session_id)

    async def history(
        self, namespace: str, session_id: str, *, limit: int, before: str | None = None
    ) -> MessagePage:
        keys = keys_of(namespace)
        before_position = "" if before is None else str(decode_position(before))
        reply = await self._transport.call(
            lambda: self._transport.script(
                self._history,
                [keys.session(session_id), keys.messages(session_id)],
                [limit, before_position, PAGE_BYTES],
                shared=False,
            ),
            shared=False,
        )
        first = int(reply[0])
        if first < 0:
            raise SessionNotFound(session_id)
        next_cursor = encode_position(first) if first > 0 else None
        return MessagePage([message_of(m) for m in reply[1:]], next_cursor)
