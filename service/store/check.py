"""``chatsessions check``: every namespace's invariants, read in bounded steps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from .keys import keys_of
from .record import render_item, text_of
from .types import RedisClient


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

    It checks: index ⇔ session records, each record's item ⇔ its fields, each
    session in its channel index with the same score, no channel index entry
    without a session, message_count ⇔ the stored messages ⇔ the idempotency
    records, no messages left without a session, and no session still stored as a
    card of a release before hashes. Reads go in batched pipelines; it is an operator's tool, not a
    request path, so it may scan.
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
        index = {text_of(m): int(s) async for m, s in self._zscan(keys.index)}
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
        for missing in sorted(index.keys() - records.keys()):
            report.problems.append(f"index holds {missing!r} but no session has that id")
        for missing in sorted(records.keys() - index.keys()):
            report.problems.append(f"session {missing!r} is missing from the index")
        channel_of: dict[str, str] = {}
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
                channel_of[session_id] = record[b"channel"].decode()
                report.messages += stored
                expected_item = render_item(
                    record[b"title"].decode(),
                    record[b"created_at"].decode(),
                    record[b"updated_at"].decode(),
                    count,
                    record[b"channel"].decode(),
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
        channels = set(channel_of.values())
        async for key in self._redis.scan_iter(match=keys.channel_prefix + "*", count=1000):
            channels.add(text_of(key)[len(keys.channel_prefix) :])
        for channel in sorted(channels):
            members = {text_of(m): int(s) async for m, s in self._zscan(keys.channel(channel))}
            for session_id in sorted(s for s, c in channel_of.items() if c == channel):
                if session_id not in members:
                    report.problems.append(
                        f"session {session_id!r} is missing from the {channel} index"
                    )
                elif session_id in index and members[session_id] != index[session_id]:
                    report.problems.append(
                        f"session {session_id!r} has another score in the {channel} index"
                    )
            for stray in sorted(m for m in members if channel_of.get(m) != channel):
                report.problems.append(f"{channel} index holds {stray!r}, not a {channel} session")
        async for key in self._redis.scan_iter(match=keys.messages_prefix + "*", count=1000):
            session_id = text_of(key)[len(keys.messages_prefix) :]
            if session_id not in records:
                report.problems.append(f"messages of {session_id!r} remain without a session")
        return report

    async def _zscan(self, key: str) -> AsyncIterator[tuple[bytes, float]]:
        async for member, score in self._redis.zscan_iter(key, count=1000):
            yield member, score
