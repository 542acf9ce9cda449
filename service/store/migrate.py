"""Moving data written by earlier releases to this release's layout."""

from __future__ import annotations

import orjson

from .keys import keys_of
from .record import TITLE_AUTO, TITLE_DEFAULT, TITLE_USER, render_card, text_of
from .types import RedisClient

# The first release kept every card of a namespace in one hash, as JSON without braces
# after a title-source letter: u"title":"…","created_at":"…",…,"channel":"web".
LEGACY_SOURCES = {"d": TITLE_DEFAULT, "a": TITLE_AUTO, "u": TITLE_USER}


async def migrate_legacy_cards(redis: RedisClient, namespace: str, batch: int = 500) -> int:
    """Move a namespace's cards from the first release's hash to card keys; returns how
    many moved. Safe to run again, and from several workers at once: a card key that
    exists already is kept (SET NX), and each moved field leaves the hash."""
    keys = keys_of(namespace)
    legacy = keys.prefix + "sessions"
    moved = 0
    pending: dict[bytes, bytes] = {}

    async def flush() -> None:
        async with redis.pipeline(transaction=False) as pipe:
            for session_id, card in pending.items():
                item = orjson.loads(b"{" + card[1:] + b"}")
                converted = render_card(
                    LEGACY_SOURCES[chr(card[0])],
                    item["title"],
                    item["created_at"],
                    item["updated_at"],
                    item["message_count"],
                    item["channel"],
                )
                pipe.set(keys.card(text_of(session_id)), converted, nx=True)
            pipe.hdel(legacy, *pending)
            await pipe.execute()

    # HSCAN returns every field present from start to end at least once, however many
    # are deleted on the way.
    async for session_id, card in redis.hscan_iter(legacy, count=batch):
        pending[session_id] = card
        if len(pending) >= batch:
            await flush()
            moved += len(pending)
            pending.clear()
    if pending:
        await flush()
        moved += len(pending)
    return moved
