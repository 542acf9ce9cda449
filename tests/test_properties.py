"""Hostile input, generated: whatever arrives, never a 5xx and never a half-stored value."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.store import InvariantChecker

from conftest import Api

PROPERTY_SETTINGS = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)
message_like = st.fixed_dictionaries(
    {},
    optional={
        "role": st.one_of(
            st.sampled_from(["user", "assistant", "system", "tool", "x"]), json_value
        ),
        "content": st.one_of(st.text(max_size=200), json_value),
        "channel": st.one_of(st.sampled_from(["web", "telegram", "bad channel", ""]), json_value),
        "id": st.one_of(st.text(max_size=30), json_value),
        "timestamp": st.one_of(
            st.sampled_from(["2024-01-15T10:30:00Z", "2024-13-99", "now", "1e999"]),
            st.floats(allow_nan=False, allow_infinity=False),
            json_value,
        ),
        "metadata": json_value,
    },
)
raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b'{"role":"user","content":"\\ud800","channel":"web"}',
            b'{"role":"user","content":"a\\u0000b","channel":"web"}',
            b'{"role":"user","content":NaN,"channel":"web"}',
            b'{"role":"user","content":Infinity,"channel":"web"}',
            b"[" * 5000 + b"]" * 5000,
            b'{"a":' * 3000 + b"1" + b"}" * 3000,
            b'\xff\xfe{"role":"user"}',
            b'{"role":"user","content":"x","channel":"web","timestamp":123456789012345678901234567890}',
            b'{"role":"user","content":"x","channel":"web","metadata":{"n":1e400}}',
        ]
    ),
)
session_ids = st.text(min_size=0, max_size=300)


def assert_clean(status: int, body: Any) -> None:
    assert status < 500, (status, body)
    if status >= 400:
        assert isinstance(body, dict) and isinstance(body.get("detail"), str) and body["detail"]


@PROPERTY_SETTINGS
@given(
    query=st.lists(
        st.tuples(
            st.sampled_from(["limit", "offset", "cursor", "channel", "active", "x"]),
            st.text(max_size=30),
        ),
        max_size=5,
    )
)
async def test_any_list_query_is_answered_cleanly(api: Api, query: list[tuple[str, str]]) -> None:
    qs = "&".join(f"{quote(k)}={quote(v, safe='')}" for k, v in query)
    status, body = await api.call("GET", f"/api/sessions?{qs}")
    assert_clean(status, body)
    if status == 200:
        assert isinstance(body["sessions"], list) and body["total"] >= 0


@PROPERTY_SETTINGS
@given(session_id=session_ids, message=message_like)
async def test_any_message_is_stored_whole_or_refused(
    api: Api, session_id: str, message: dict[str, Any]
) -> None:
    path = f"/api/sessions/{quote(session_id, safe='')}/messages"
    status, body = await api.call(
        "POST", path, data=orjson.dumps(message), headers={"Content-Type": "application/json"}
    )
    assert_clean(status, body)
    if status in (200, 201):
        stored = body["message"]
        assert stored["content"] == message["content"]
        status, history = await api.call("GET", path + "?limit=500")
        assert status == 200
        assert stored in history["messages"]
        status, session = await api.call("GET", f"/api/sessions/{quote(session_id, safe='')}")
        assert status == 200 and session["message_count"] == len(history["messages"])


@PROPERTY_SETTINGS
@given(
    raw=raw_bodies,
    content_type=st.sampled_from(
        ["application/json", "text/plain", "application/x-www-form-urlencoded", ""]
    ),
)
async def test_any_raw_body_is_refused_cleanly(api: Api, raw: bytes, content_type: str) -> None:
    for method, path in [
        ("POST", "/api/sessions/s/messages"),
        ("POST", "/api/messages"),
        ("POST", "/api/sessions"),
        ("PATCH", "/api/sessions/s"),
    ]:
        status, body = await api.call(
            method, path, data=raw, headers={"Content-Type": content_type}
        )
        assert_clean(status, body)


@PROPERTY_SETTINGS
@given(session_id=session_ids, title=st.one_of(st.text(max_size=250), json_value))
async def test_any_id_and_title_round_trip_or_are_refused(
    api: Api, session_id: str, title: Any
) -> None:
    body = {"id": session_id, "channel": "web", "title": title}
    status, created = await api.call("POST", "/api/sessions", json=body)
    assert_clean(status, created)
    if status == 201:
        status, got = await api.call("GET", f"/api/sessions/{quote(session_id, safe='')}")
        assert status == 200 and got["id"] == session_id and got["title"] == created["title"]
        status, listed = await api.call("GET", "/api/sessions?limit=500")
        assert session_id in [s["id"] for s in listed["sessions"]]


@PROPERTY_SETTINGS
@given(
    headers=st.dictionaries(
        st.sampled_from(["Authorization", "Content-Type", "Origin", "X-Forwarded-For", "Accept"]),
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60),
        max_size=4,
    )
)
async def test_any_headers_are_answered_cleanly(api: Api, headers: dict[str, str]) -> None:
    status, body = await api.call(
        "GET",
        "/api/sessions",
        headers=headers,
        token=None if "Authorization" in headers else "admin",
    )
    assert_clean(status, body)


async def test_generated_writes_leave_no_drift(api: Api) -> None:
    """After a burst of generated writes, the namespace's invariants hold."""
    batch = [
        {
            "session_id": f"p{n % 7}",
            "channel": "web",
            "role": "user",
            "content": "x" * n,
            "id": f"i{n % 50}",
        }
        for n in range(300)
    ]
    status, body = await api.call("POST", "/api/messages", json={"messages": batch})
    assert status == 200
    from service.appkeys import STORE

    store = api.client.app[STORE]
    report = await InvariantChecker(store._redis).check("default")
    assert report.ok, report.problems
