"""Organised sessions seeded straight into Redis, byte for byte as the write scripts
leave them (scripts/record.lua): the session hash with pinned, archived, tags and user
when set, and its item; every sorted set its fields put it in, each in the half its
archived field names (service/store/check.py's ``memberships``, the Python twin of the
scripts'); the channels and tags registries; and the layout mark a service writes once
its namespace is current, so that a service started on the seed has nothing to move.

Each session's organisation is a function of its number alone, so that every size holds
the same mix:

- channel: one of ten, in turn (each 10 %);
- tag: one of ten, ``(n // 10) % 10``, so that a tag and a channel are independent and
  a tag with a channel matches 1 % of sessions;
- archived, pinned and the shared person ``FREQUENT_USER``: each 10 %, drawn from a hash
  of the number, independent of each other and of the channel and tag;
- user: ``FREQUENT_USER`` or else one person per four consecutive sessions (a person on
  four channels).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import redis

from service.models import format_time
from service.store import Keys
from service.store.check import memberships
from service.store.migrate import LAYOUT
from service.store.record import TITLE_AUTO, record_fields, render_item

CHANNELS = (
    "web", "telegram", "discord", "slack", "whatsapp",
    "matrix", "teams", "signal", "sms", "email",
)  # fmt: skip
TAGS = tuple(f"topic{k}" for k in range(10))
FREQUENT_USER = "frequent-person"
MESSAGE_COUNT = 3
CHUNK = 20_000


@dataclass(frozen=True, slots=True)
class Organised:
    session_id: str
    channel: str
    tag: str
    user: str
    pinned: bool
    archived: bool


def draws(n: int) -> tuple[int, int, int]:
    """Three digits (0-9) of a hash of ``n``, independent of each other and of ``n``'s own
    digits (which give the channel and tag)."""
    digest = hashlib.blake2b(n.to_bytes(8, "little"), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % 10, value // 10 % 10, value // 100 % 10


def organised(n: int) -> Organised:
    archived, pinned, frequent = draws(n)
    return Organised(
        session_id=f"session_{n:08d}",
        channel=CHANNELS[n % len(CHANNELS)],
        tag=TAGS[n // 10 % len(TAGS)],
        user=FREQUENT_USER if frequent == 5 else f"person{n // 4}",
        pinned=pinned == 7,
        archived=archived == 3,
    )


def record_of(session: Organised, n: int, stamp: str) -> list[str | bytes]:
    """The session's hash as record.lua's ``record_write`` writes it: the seed's fields,
    its item, then pinned, archived, tags and user."""
    fields = record_fields(
        title=f"Bench session number {n}",
        title_source=TITLE_AUTO,
        channel=session.channel,
        created_at=stamp,
        updated_at=stamp,
        message_count=MESSAGE_COUNT,
        metadata=None,
    )
    item = fields.index("item") + 1
    fields[item] = render_item(
        f"Bench session number {n}",
        stamp,
        stamp,
        MESSAGE_COUNT,
        session.channel,
        pinned=session.pinned,
        archived=session.archived,
        tags=(session.tag,),
        user=session.user,
    )
    if session.pinned:
        fields += ["pinned", "true"]
    if session.archived:
        fields += ["archived", "true"]
    return [*fields, "tags", session.tag, "user", session.user]


def seed_organised(
    client: redis.Redis, count: int, newest_ms: int, namespace: str = "default"
) -> None:
    """``count`` organised sessions, session n updated ``n`` seconds before
    ``newest_ms``, pipelined in chunks."""
    keys = Keys(namespace)
    channels: set[str] = set()
    tags: set[str] = set()
    for start in range(0, count, CHUNK):
        sets: dict[str, dict[str, int]] = {}
        pipe = client.pipeline(transaction=False)
        for n in range(start, min(count, start + CHUNK)):
            session = organised(n)
            score = newest_ms - n * 1000
            fields = record_of(session, n, format_time(score))
            pipe.hset(keys.session(session.session_id), items=fields)
            record = {
                str(name).encode(): value if isinstance(value, bytes) else value.encode()
                for name, value in zip(fields[0::2], fields[1::2], strict=True)
            }
            for key in memberships(keys, record):
                sets.setdefault(key, {})[session.session_id] = score
            channels.add(session.channel)
            tags.add(session.tag)
        for key, members in sets.items():
            pipe.zadd(key, members)
        pipe.execute()
    pipe = client.pipeline(transaction=False)
    if channels:
        pipe.sadd(keys.channels, *sorted(channels))
    if tags:
        pipe.sadd(keys.tags, *sorted(tags))
    pipe.set(keys.layout, LAYOUT)
    pipe.execute()
