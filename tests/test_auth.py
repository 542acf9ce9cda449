"""Tokens: hashed, compared in constant time, scoped, and fenced into one namespace."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re

import pytest
from aiohttp import web

from service.appkeys import ROUTE_SCOPES
from service.auth import TokenRegistry, hash_token, new_token, parse_bearer
from service.settings import SCOPES, TokenConfig

from conftest import Api, Tokens

SESSION = "s:1/2"


def api_routes(app: web.Application) -> list[tuple[str, str, str]]:
    """(method, path with a session id filled in, scope) of every /api route."""
    found = []
    for route, scope in app[ROUTE_SCOPES].items():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter", "")
        path = re.sub(r"\{session_id[^}]*\}", "s%3A1%2F2", path)
        found.append((route.method, path, scope))
    return sorted(found)


def test_hash_and_new_token() -> None:
    token = new_token()
    assert token.startswith("cs_") and len(token) > 40
    assert hash_token(token) == hashlib.sha256(token.encode()).hexdigest()
    assert new_token() != token


@pytest.mark.parametrize(
    ("header", "token"),
    [
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic abc", None),
        ("Token abc", None),
        ("Bearer abc", "abc"),
        ("bearer   abc  ", "abc"),
    ],
)
def test_parse_bearer(header: str | None, token: str | None) -> None:
    assert parse_bearer(header) == token


def test_every_entry_is_compared_whichever_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = [new_token() for _ in range(5)]
    registry = TokenRegistry(
        tuple(
            TokenConfig(f"t{n}", hash_token(s), frozenset(SCOPES), "default")
            for n, s in enumerate(secrets)
        )
    )
    calls: list[int] = []
    real_compare = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real_compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    for probe, expected in [(secrets[0], "t0"), (secrets[4], "t4"), ("wrong", None)]:
        calls.clear()
        principal = registry.resolve(probe)
        assert (principal.name if principal else None) == expected
        assert len(calls) == 5


async def test_every_api_route_refuses_bad_credentials(api: Api) -> None:
    routes = api_routes(api.client.app)
    assert len(routes) >= 9
    bad_headers = [
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer cs_not_a_real_token"},
        {"Authorization": api.tokens["admin"]},
    ]
    for method, path, _ in routes:
        for headers in bad_headers:
            async with api.client.request(method, path, headers=headers, json={}) as response:
                assert response.status == 401, (method, path, headers)
                assert response.headers["WWW-Authenticate"].startswith("Bearer")
                body = await response.json()
                assert body["detail"]


async def test_scopes_are_enforced_on_every_route(api: Api, tokens: Tokens) -> None:
    for method, path, scope in api_routes(api.client.app):
        for name in ("reader", "writer"):
            config = next(c for c in tokens.configs if c.name == name)
            status, body = await api.call(method, path, token=name, json={})
            if scope in config.scopes:
                assert status != 403, (method, path, name)
            else:
                assert status == 403, (method, path, name, status)
                assert scope in body["detail"]


async def test_another_namespace_sees_nothing(api: Api) -> None:
    await api.ingest(SESSION, content="secret of default")
    status, body = await api.call("GET", "/api/sessions", token="other")
    assert (status, body["sessions"], body["total"]) == (200, [], 0)
    for method, path, _ in api_routes(api.client.app):
        if "s%3A1%2F2" not in path or (method, path.rsplit("/", 1)[-1]) == ("POST", "messages"):
            continue
        status, body = await api.call(method, path, token="other", json={"title": "hijack"})
        assert status in (404, 422), (method, path, status)
        assert "secret of default" not in str(body)
    status, body = await api.call("GET", "/api/sessions/s%3A1%2F2")
    assert (status, body["title"]) == (200, "secret of default")
    # Writing to the same id from the other namespace makes a separate session.
    status, body = await api.call(
        "POST",
        "/api/sessions/s%3A1%2F2/messages",
        token="other",
        json={"role": "user", "content": "mine", "channel": "web"},
    )
    assert (status, body["session"]["message_count"]) == (201, 1)
    status, body = await api.call("GET", "/api/sessions/s%3A1%2F2")
    assert body["message_count"] == 1 and body["title"] == "secret of default"


async def test_tokens_never_reach_the_log(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "cs_wrong_" + "z" * 30
    await api.call("GET", "/api/sessions")
    await api.call("GET", "/api/sessions", headers={"Authorization": f"Bearer {wrong}"}, token=None)
    await api.call("GET", "/api/sessions/x", token="reader")
    await api.call("DELETE", "/api/sessions/x", token="reader")
    text = caplog.text
    for secret in [*api.tokens.secrets.values(), wrong]:
        assert secret not in text
        assert hash_token(secret) not in text
