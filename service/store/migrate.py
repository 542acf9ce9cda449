"""Moving data written by earlier releases to this release's layout, online, in
bounded batches, idempotent and resumable.

- The first release kept every session of a namespace in one hash
  ``cs:{ns}:sessions``, as JSON without braces after a title-source letter.
- Releases before 0.2 kept each session as a card string ``cs:{ns}:card:<id>``
  (its metadata in ``cs:{ns}:meta:<id>``); scripts/record.lua reads that form.

Both move to the session hashes of :mod:`.record`. A session a write meets before the
move does is moved by that write's script; until the move reaches it, a list page
leaves out a session still stored as a card.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from .keys import keys_of
from .record import TITLE_AUTO, TITLE_DEFAULT, TITLE_USER, record_fields, text_of
from .scripts import script_text
from .types import RedisClient

LEGACY_SOURCES = {"d": TITLE_DEFAULT, "a": TITLE_AUTO, "u": TITLE_USER}
BATCH = 500
# The layout this release keeps, marked in a namespace once a pass over all its sessions
# brought them to it: later starts skip the pass.
LAYOUT = "4"


async def migrate_first_release(redis: RedisClient, namespace: str, batch: int = BATCH) -> int:
    """Move a namespace's sessions from the first release's hash to session hashes;
    returns how many moved. A session whose hash exists already is kept as it is, and
    each moved field leaves the first release's hash."""
    keys = keys_of(namespace)
    legacy = keys.prefix + "sessions"
    moved = 0
    pending: dict[bytes, bytes] = {}

    async def flush() -> None:
        ids = list(pending)
        async with redis.pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.exists(keys.session(text_of(session_id)))
            present = await pipe.execute()
        async with redis.pipeline(transaction=False) as pipe:
            for session_id, exists in zip(ids, present, strict=True):
                card = pending[session_id]
                if not exists:
                    item = orjson.loads(b"{" + card[1:] + b"}")
                    fields = record_fields(
                        title=item["title"],
                        title_source=LEGACY_SOURCES[chr(card[0])],
                        channel=item["channel"],
                        created_at=item["created_at"],
                        updated_at=item["updated_at"],
                        message_count=item["message_count"],
                        metadata=None,
                    )
                    pipe.hset(keys.session(text_of(session_id)), items=fields)
                    if item["message_count"] == 0:
                        # Counts learn the sessions without messages as writes keep them.
                        pipe.hincrby(keys.empty, item["channel"], 1)
            pipe.hdel(legacy, *ids)
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


async def move_cards(
    redis: RedisClient,
    namespace: str,
    batch: int = BATCH,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Move a namespace's card sessions to hashes, name its channels in its channels set
    and its sessions' readers read to the end, one script call per ``batch`` ranks of its
    index, then of its archived sessions; returns how many moved. ``progress(ranks read,
    moved)`` is told after each batch."""
    keys = keys_of(namespace)
    script = redis.register_script(script_text("move_cards"))
    ranks = moved = 0
    for listing in (keys.index, keys.archived):
        rank = 0
        while True:
            moved_here, read = await script(
                keys=[listing, keys.channels, keys.readers],
                args=[keys.session_prefix, rank, batch],
            )
            rank += int(read)
            moved += int(moved_here)
            if progress is not None:
                progress(ranks + rank, moved)
            if int(read) < batch:
                break
        ranks += rank
    return moved


async def migrate_legacy_cards(
    redis: RedisClient,
    namespace: str,
    batch: int = BATCH,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Every earlier layout of a namespace brought to this release's; how many sessions
    moved. ``progress`` is told the ranks read and sessions moved after each batch of
    cards. A namespace marked with this layout is skipped."""
    keys = keys_of(namespace)
    if text_of(await redis.get(keys.layout) or b"") == LAYOUT:
        return 0
    first = await migrate_first_release(redis, namespace, batch)
    moved = first + await move_cards(redis, namespace, batch, progress)
    await redis.set(keys.layout, LAYOUT)
    return moved
