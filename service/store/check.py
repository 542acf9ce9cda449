"""``chatsessions check``: every namespace's invariants, read in bounded steps."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import NamedTuple

import orjson

from .keys import Keys, keys_of
from .record import render_item, text_of
from .types import RedisClient


def check_read_to_end(
    records: dict[str, dict[bytes, bytes]], readers: list[str], report: CheckReport
) -> None:
    """Each session's read_to_end names exactly the readers whose marks reach its count."""
    for session_id, record in records.items():
        count = int(record[b"message_count"])
        read_to_end = {
            reader
            for reader in readers
            if count > 0 and int(record.get(f"read:{reader}".encode(), b"-1")) >= count
        }
        stored = set(orjson.loads(record.get(b"read_to_end", b"[]")))
        if stored != read_to_end:
            report.problems.append(
                f"session {session_id!r} names {sorted(stored)} as read to its end, "
                f"but its marks make {sorted(read_to_end)}"
            )


class Organisation(NamedTuple):
    pinned: bool
    archived: bool
    tags: tuple[str, ...]
    user: str | None


def organisation(record: dict[bytes, bytes]) -> Organisation:
    """A record's pinned, archived, tags and user, as its hash holds them."""
    tags = record.get(b"tags")
    user = record.get(b"user")
    return Organisation(
        record.get(b"pinned") == b"true",
        record.get(b"archived") == b"true",
        tuple(tags.decode().split(",")) if tags else (),
        user.decode() if user is not None else None,
    )


def memberships(keys: Keys, record: dict[bytes, bytes]) -> list[str]:
    """The sorted sets a record's fields put its session in (scripts/record.lua's
    ``memberships``)."""
    o = organisation(record)
    sets = [
        keys.listing(o.archived),
        keys.listing(o.archived, "channel", record[b"channel"].decode()),
    ]
    if o.pinned:
        sets.append(keys.listing(o.archived, "pinned"))
    sets += [keys.listing(o.archived, "tag", tag) for tag in o.tags]
    if o.user is not None:
        sets.append(keys.listing(o.archived, "user", o.user))
    return sets


@dataclass(slots=True)
class CheckReport:
    """What :meth:`InvariantChecker.check` found in one namespace."""

    namespace: str
    sessions: int = 0
    messages: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class InvariantChecker:
    """Walks a namespace offline and reports drift between its keys.

    It checks: each record's item ⇔ its fields; each session in exactly the sorted
    sets its fields put it in (the index or the archived set, its channel's, pinned,
    its tags' and its person's, each in the half its archived field names), all with
    one score, and no sorted set holding anything else; the channels and tags sets
    naming exactly those that list sessions; the counts of sessions without messages
    and of sessions each reader has read through, per channel; message_count ⇔ the
    stored messages ⇔ the idempotency records; no messages left without a session; no
    session still stored as a card of a release before hashes. Reads go in batched
    pipelines; it is an operator's tool, not a request path, so it may scan.
    """

    BATCH = 500

    def __init__(self, redis: RedisClient) -> None:
        self._redis = redis

    async def namespaces(self) -> list[str]:
        found = set()
        async for key in self._redis.scan_iter(match="cs:{*}:index", count=1000):
            name = text_of(key)
            found.add(name[len("cs:{") : name.index("}:")])
        return sorted(found)

    async def check(self, namespace: str) -> CheckReport:
        keys = keys_of(namespace)
        report = CheckReport(namespace)
        session_ids = [
            text_of(key)[len(keys.session_prefix) :]
            async for key in self._redis.scan_iter(match=keys.session_prefix + "*", count=1000)
        ]
        records: dict[str, dict[bytes, bytes]] = {}
        for start in range(0, len(session_ids), self.BATCH):
            batch = session_ids[start : start + self.BATCH]
            async with self._redis.pipeline(transaction=False) as pipe:
                for session_id in batch:
                    pipe.hgetall(keys.session(session_id))
                found = await pipe.execute()
            records.update((i, r) for i, r in zip(batch, found, strict=True) if r)
        report.sessions = len(records)
        async for key in self._redis.scan_iter(match=keys.card_prefix + "*", count=1000):
            report.problems.append(
                f"session {text_of(key)[len(keys.card_prefix) :]!r} is still stored as a card "
                "of a release before 0.2; run chatsessions migrate"
            )
        ids = sorted(records)
        for start in range(0, len(ids), self.BATCH):
            batch = ids[start : start + self.BATCH]
            async with self._redis.pipeline(transaction=False) as pipe:
                for session_id in batch:
                    pipe.llen(keys.messages(session_id))
                    pipe.hlen(keys.seen(session_id))
                replies = await pipe.execute()
            for position, session_id in enumerate(batch):
                stored, seen = replies[2 * position], replies[2 * position + 1]
                record = records[session_id]
                count = int(record[b"message_count"])
                report.messages += stored
                organised = organisation(record)
                expected_item = render_item(
                    record[b"title"].decode(),
                    record[b"created_at"].decode(),
                    record[b"updated_at"].decode(),
                    count,
                    record[b"channel"].decode(),
                    pinned=organised.pinned,
                    archived=organised.archived,
                    tags=organised.tags,
                    user=organised.user,
                )
                if record.get(b"item") != expected_item:
                    report.problems.append(
                        f"session {session_id!r} has a list item that disagrees with its fields"
                    )
                if count != stored:
                    report.problems.append(
                        f"session {session_id!r} counts {count} messages but stores {stored}"
                    )
                if seen != stored:
                    report.problems.append(
                        f"session {session_id!r} has {seen} message ids for {stored} messages"
                    )
        await self._check_sets(keys, records, report)
        await self._check_counters(keys, records, report)
        async for key in self._redis.scan_iter(match=keys.messages_prefix + "*", count=1000):
            session_id = text_of(key)[len(keys.messages_prefix) :]
            if session_id not in records:
                report.problems.append(f"messages of {session_id!r} remain without a session")
        return report

    async def _check_sets(
        self, keys: Keys, records: dict[str, dict[bytes, bytes]], report: CheckReport
    ) -> None:
        expected: dict[str, set[str]] = {}
        for session_id, record in records.items():
            for key in memberships(keys, record):
                expected.setdefault(key, set()).add(session_id)
        present = {keys.index, keys.archived}
        async for key in self._redis.scan_iter(match=keys.prefix + "*", count=1000, _type="zset"):
            present.add(text_of(key))
        registries: dict[str, set[str]] = {"channel": set(), "tag": set()}
        scores: dict[str, float] = {}
        # The index and the archived set first: a session's score is theirs, and any other
        # set scoring it otherwise is the one that drifted.
        for key in sorted(
            present | expected.keys(), key=lambda k: k not in (keys.index, keys.archived)
        ):
            name = key[len(keys.prefix) :]
            members = {text_of(m): s async for m, s in self._zscan(key)}
            for kind in registries:
                for half in ("", "archived:"):
                    if members and name.startswith(f"{half}{kind}:"):
                        registries[kind].add(name[len(half) + len(kind) + 1 :])
            for session_id in sorted(expected.get(key, set()) - members.keys()):
                report.problems.append(f"session {session_id!r} is missing from {name}")
            for stray in sorted(members.keys() - expected.get(key, set())):
                if stray in records:
                    report.problems.append(f"{name} holds {stray!r}, which its fields leave out")
                else:
                    report.problems.append(f"{name} holds {stray!r} but no session has that id")
            for session_id, score in members.items():
                if scores.setdefault(session_id, score) != score:
                    report.problems.append(f"session {session_id!r} has another score in {name}")
        for kind, registry in (("channel", keys.channels), ("tag", keys.tags)):
            named = {text_of(m) for m in await self._redis.smembers(registry)}
            for name in sorted(registries[kind] - named):
                report.problems.append(f"{kind} {name!r} lists sessions but {registry} lacks it")
            for name in sorted(named - registries[kind]):
                report.problems.append(f"{registry} names {kind} {name!r}, which lists none")

    async def _check_counters(
        self, keys: Keys, records: dict[str, dict[bytes, bytes]], report: CheckReport
    ) -> None:
        live = [r for r in records.values() if r.get(b"archived") != b"true"]
        readers = sorted(text_of(r) for r in await self._redis.smembers(keys.readers))
        check_read_to_end(records, readers, report)
        wanted: dict[str, Counter[str]] = {keys.empty: Counter()}
        for reader in readers:
            wanted[keys.read_through(reader)] = Counter()
        for record in live:
            channel, count = record[b"channel"].decode(), int(record[b"message_count"])
            if count == 0:
                wanted[keys.empty][channel] += 1
            for reader in readers:
                mark = record.get(f"read:{reader}".encode())
                if count > 0 and mark is not None and int(mark) >= count:
                    wanted[keys.read_through(reader)][channel] += 1
        for key, counts in wanted.items():
            stored = {
                text_of(c): int(n) for c, n in (await self._redis.hgetall(key)).items() if int(n)
            }
            if stored != {c: n for c, n in counts.items() if n}:
                report.problems.append(
                    f"{key[len(keys.prefix) :]} counts {stored}, but the sessions make "
                    f"{dict(sorted(counts.items()))}"
                )

    async def _zscan(self, key: str) -> AsyncIterator[tuple[bytes, float]]:
        async for member, score in self._redis.zscan_iter(key, count=1000):
            yield member, score
