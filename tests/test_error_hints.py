"""Errors that point to the fix, as a caller meets them over HTTP."""

from __future__ import annotations

import pytest

from conftest import Api


async def test_a_timestamp_in_milliseconds_answers_422_saying_seconds(api: Api) -> None:
    message = {"role": "user", "content": "hi", "channel": "web", "timestamp": 1705314600000}
    status, body = await api.call("POST", "/api/sessions/chat/messages", json=message)
    assert status == 422
    assert "seconds, not milliseconds" in body["detail"]
    batch = {"messages": [{"session_id": "chat", **message}]}
    status, body = await api.call("POST", "/api/messages", json=batch)
    assert status == 200
    assert body["results"][0]["status"] == 422
    assert "seconds, not milliseconds" in body["results"][0]["detail"]
    status, _ = await api.call("GET", "/api/sessions/chat")
    assert status == 404


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/sessions/spaces/abc123"),
        ("DELETE", "/api/sessions/spaces/abc123"),
        ("GET", "/api/sessions/spaces/abc123/messages"),
        ("POST", "/api/sessions/spaces/abc123/messages"),
        ("GET", "/api/sessions/spaces/abc123/export"),
    ],
)
async def test_an_unencoded_slash_in_a_session_id_answers_404_saying_to_encode_it(
    api: Api, method: str, path: str
) -> None:
    await api.ingest("spaces/abc123")
    status, body = await api.call(method, path, json={"role": "user", "content": "x"})
    assert status == 404
    assert "percent-encode it: spaces%2Fabc123." in body["detail"]


async def test_the_encoding_hint_keeps_what_was_encoded(api: Api) -> None:
    status, body = await api.call("GET", "/api/sessions/a%3Ab/c/messages")
    assert status == 404
    assert "If the session id is a:b/c, percent-encode it: a%3Ab%2Fc." in body["detail"]


@pytest.mark.parametrize("path", ["/api/nothing-here", "/api/sessions/", "/api/sessions//x"])
async def test_a_404_with_no_id_in_sight_gives_no_encoding_hint(api: Api, path: str) -> None:
    status, body = await api.call("GET", path)
    assert status == 404
    assert "percent-encode" not in body["detail"]
