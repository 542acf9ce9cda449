"""A batch has exactly the effect of its messages sent one by one, in order: the same
answer per message and the same keys in Redis afterwards, whatever the mix of sessions,
repeated ids (stored before or earlier in the same batch), missing channels, times that
go back, and runs of one session cut by the script's chunks."""

from __future__ import annotations

from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.models import MessageIn
from service.store import BATCH_CHUNK, BatchOutcome, ChannelRequired, SessionStore, StoreError

NOW = 1_705_315_500_000

messages = st.builds(
    lambda session, message_id, role, step, channel, words: (
        f"s{session}",
        MessageIn(
            id=f"m{message_id}",
            role=role,
            content=" ".join(words) or " ",
            timestamp_ms=NOW + step * 1000,
            metadata=None,
            channel=channel,
        ),
    ),
    st.integers(0, 3),
    st.integers(0, 12),
    st.sampled_from(["user", "assistant"]),
    st.integers(-5, 5),
    st.sampled_from([None, "web", "telegram"]),
    st.lists(st.sampled_from(["hi", "there", "prime", "numbers"]), max_size=4),
)


def answer(outcome: BatchOutcome | StoreError) -> tuple[Any, ...]:
    if isinstance(outcome, BatchOutcome):
        return (outcome.created, outcome.message, outcome.message_count)
    return (type(outcome).__name__,)


async def one_by_one(
    store: SessionStore, namespace: str, items: list[tuple[str, MessageIn]]
) -> list[tuple[Any, ...]]:
    answers: list[tuple[Any, ...]] = []
    for session_id, message in items:
        try:
            result = await store.add_message(namespace, session_id, message, now=NOW)
        except ChannelRequired:
            answers.append(("ChannelRequired",))
            continue
        answers.append((result.created, result.message, result.session.message_count))
    return answers


async def redis_state(store: SessionStore, namespace: str) -> dict[str, Any]:
    """Every key of the namespace and its value, with the namespace taken out of names."""
    client = store._redis
    state: dict[str, Any] = {}
    async for raw in client.scan_iter(match=f"cs:{{{namespace}}}:*"):
        key = raw.decode() if isinstance(raw, bytes) else raw
        kind = await client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "string":
            value: Any = await client.get(key)
        elif kind == "list":
            value = await client.lrange(key, 0, -1)
        elif kind == "hash":
            value = await client.hgetall(key)
        elif kind == "set":
            value = sorted(await client.smembers(key))
        elif kind == "stream":
            # Event ids are times, and a batch brings a session's messages together:
            # what must match is each session's events, in order.
            value = {}
            for _, fields in cast(list[tuple[bytes, dict[bytes, bytes]]], await client.xrange(key)):
                value.setdefault(fields[b"id"], []).append(fields)
        else:
            value = await client.zrange(key, 0, -1, withscores=True)
        name = key.split(":", 2)[2]
        # Operation ids (kept seconds, to answer a retried write) are not session state,
        # and the version is the latest event's id, a time.
        if not name.startswith("op:") and name != "version":
            state[name] = value
    return state


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    before=st.lists(messages, max_size=6),
    batch=st.lists(messages, min_size=1, max_size=40),
)
async def test_a_batch_equals_its_messages_one_by_one(
    store: SessionStore, before: list[tuple[str, MessageIn]], batch: list[tuple[str, MessageIn]]
) -> None:
    await store._redis.flushdb()
    for namespace in ("single", "batch"):
        await one_by_one(store, namespace, before)
    expected = await one_by_one(store, "single", batch)
    got = [answer(o) for o in await store.add_messages("batch", batch, now=NOW)]
    assert got == expected
    assert await redis_state(store, "batch") == await redis_state(store, "single")


async def test_runs_longer_than_a_chunk_are_split_and_still_equal(store: SessionStore) -> None:
    batch = [
        ("long", MessageIn(f"m{n % (BATCH_CHUNK + 30)}", "user", f"n{n}", NOW + n, None, "web"))
        for n in range(2 * BATCH_CHUNK + 50)
    ]
    expected = await one_by_one(store, "single", batch)
    got = [answer(o) for o in await store.add_messages("batch", batch, now=NOW)]
    assert got == expected
    assert sum(1 for a in got if a[0] is True) == BATCH_CHUNK + 30
    assert await redis_state(store, "batch") == await redis_state(store, "single")
