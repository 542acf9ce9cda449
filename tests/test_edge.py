"""What every request passes through: CORS for the configured origins, errors as JSON
(an unexpected one too), and each request counted and logged once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from service.app import create_app
from service.appkeys import METRICS, STORE
from service.settings import Settings
from service.store import RedisClient, SessionStore

from conftest import Tokens

ORIGIN = "https://dash.example"


@pytest.fixture
async def cors_client(
    redis_client: RedisClient, settings: Settings
) -> AsyncIterator[TestClient[Any, Any]]:
    configured = replace(settings, redis_url="redis://unused", cors_origins=(ORIGIN,))
    app = create_app(configured, redis_client=redis_client)
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_preflight_from_an_allowed_origin_needs_no_token(
    cors_client: TestClient[Any, Any],
) -> None:
    response = await cors_client.options(
        "/api/sessions",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"},
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    assert "PATCH" in response.headers["Access-Control-Allow-Methods"]


async def test_preflight_from_another_origin_is_refused(cors_client: TestClient[Any, Any]) -> None:
    response = await cors_client.options(
        "/api/sessions",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert response.status == 403
    assert "https://evil.example" in (await response.json())["detail"]
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_answers_and_errors_carry_cors_headers_for_an_allowed_origin(
    cors_client: TestClient[Any, Any], tokens: Tokens
) -> None:
    listed = await cors_client.get(
        "/api/sessions", headers={"Origin": ORIGIN, **tokens.header("admin")}
    )
    assert listed.status == 200
    refused = await cors_client.get("/api/sessions", headers={"Origin": ORIGIN})
    assert refused.status == 401
    for response in (listed, refused):
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert response.headers["Access-Control-Expose-Headers"] == "Retry-After, ETag"
        assert response.headers["Vary"] == "Origin"
    stranger = await cors_client.get(
        "/api/sessions", headers={"Origin": "https://evil.example", **tokens.header("admin")}
    )
    assert stranger.status == 200
    assert "Access-Control-Allow-Origin" not in stranger.headers


async def test_streams_carry_cors_headers_for_an_allowed_origin(
    cors_client: TestClient[Any, Any], tokens: Tokens
) -> None:
    """The feed and an export send their headers before their handler returns."""
    headers = {"Origin": ORIGIN, **tokens.header("admin")}
    async with cors_client.get("/api/events", headers=headers) as feed:
        assert feed.status == 200
        assert feed.headers["Access-Control-Allow-Origin"] == ORIGIN
    exported = await cors_client.get("/api/export", headers=headers)
    assert exported.status == 200
    assert exported.headers["Access-Control-Allow-Origin"] == ORIGIN
    preflight = await cors_client.options(
        "/api/events",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "authorization, last-event-id",
        },
    )
    assert "Last-Event-ID" in preflight.headers["Access-Control-Allow-Headers"]


async def test_without_cors_origins_no_cors_headers_are_sent(api: Any, tokens: Tokens) -> None:
    response = await api.client.get(
        "/api/sessions", headers={"Origin": ORIGIN, **tokens.header("admin")}
    )
    assert response.status == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    preflight = await api.client.options(
        "/api/sessions", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
    )
    # Not a preflight the service answers: OPTIONS is no route of the API.
    assert preflight.status in (401, 405)
    assert (await preflight.json())["detail"]


class BrokenStore(SessionStore):
    """A store with a bug in it: the edge must answer 500 JSON and log it, not crash."""

    async def list_sessions(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")


async def test_an_unexpected_error_is_a_logged_json_500(
    redis_client: RedisClient,
    settings: Settings,
    tokens: Tokens,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = create_app(replace(settings, redis_url="redis://unused"), redis_client=redis_client)

    async def broken_store(app: web.Application) -> AsyncIterator[None]:
        app[STORE] = BrokenStore(redis_client, active_window_ms=1000)
        yield

    app.cleanup_ctx.append(broken_store)
    with caplog.at_level(logging.ERROR, logger="chatsessions"):
        async with TestClient(TestServer(app)) as client:
            response = await client.get("/api/sessions", headers=tokens.header("admin"))
            assert response.status == 500
            assert response.content_type == "application/json"
            assert "logged" in (await response.json())["detail"]
            assert app[METRICS].counts.requests[("GET", "/api/sessions", 500)] == 1
    assert any("unhandled error on GET /api/sessions" in r.getMessage() for r in caplog.records)
    assert any(r.exc_info and "a bug" in str(r.exc_info[1]) for r in caplog.records)
