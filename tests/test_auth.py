"""Tokens: hashed, compared in constant time, scoped, and fenced into one namespace."""

from __future__ import annotations

import asyncio
import gc
import hashlib
import hmac
import logging
import re

import orjson
import pytest
from aiohttp import web

from service.appkeys import ROUTE_SCOPES, TOKENS
from service.auth import Principal, TokenRegistry, hash_token, new_token, parse_bearer
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


class Connection:
    """Stands for a client's connection: any object a weak reference can follow."""


def test_a_connection_is_remembered_with_its_last_valid_header(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = new_token()
    registry = TokenRegistry((TokenConfig("bot", hash_token(secret), frozenset(SCOPES), "ns"),))
    principal = registry.resolve(secret)
    assert principal is not None
    compared: list[tuple[str, str]] = []
    real_compare = hmac.compare_digest

    def counting(a: str, b: str) -> bool:
        compared.append((a, b))
        return real_compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    first, second = Connection(), Connection()
    header = f"Bearer {secret}"
    assert registry.remembered(first, header) is None
    registry.remember(first, header, principal)
    assert registry.remembered(first, header) is principal
    # Compared in constant time: one connection may carry several clients' requests.
    assert compared[-1] == (header, header)
    assert registry.remembered(first, header[:-1] + "x") is None
    assert registry.remembered(first, header + " ") is None
    assert registry.remembered(first, "") is None
    assert registry.remembered(second, header) is None
    # A header that is not ASCII is never kept nor compared (compare_digest refuses it).
    compared.clear()
    assert registry.remembered(first, header + "é") is None
    registry.remember(second, "Bearer é", principal)
    assert registry.remembered(second, "Bearer é") is None and compared == []
    assert registry.remembered_connections == 1
    # Nothing outlives its connection.
    del first
    gc.collect()
    assert registry.remembered_connections == 0


async def http_exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, authorization: str | None
) -> tuple[int, bytes]:
    """One request on a kept-alive connection, and its status and body."""
    header = "" if authorization is None else f"Authorization: {authorization}\r\n"
    writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\n{header}\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))  # type: ignore[union-attr]
    return status, await reader.readexactly(length)


async def test_one_connection_sending_other_headers_is_checked_each_time(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A connection's remembered header lets only that very header through: another
    token, a wrong one or none on the same connection is checked as on a new one."""
    await api.ingest(SESSION, content="of default")
    registry: TokenRegistry = api.client.app[TOKENS]
    # The test client's own connection, kept alive in its pool.
    kept_before = registry.remembered_connections
    resolved: list[str] = []
    real_resolve = registry.resolve

    def counting(token: str) -> Principal | None:
        resolved.append(token)
        return real_resolve(token)

    monkeypatch.setattr(registry, "resolve", counting)
    server = api.client.server
    reader, writer = await asyncio.open_connection(server.host, server.port)
    admin, other = (f"Bearer {api.tokens[name]}" for name in ("admin", "other"))
    try:
        sent = [
            (admin, 200, 1),
            (admin, 200, 1),
            ("Bearer cs_not_a_real_token", 401, None),
            (None, 401, None),
            (other, 200, 0),
            (other, 200, 0),
            (admin[:-1], 401, None),
            (admin, 200, 1),
        ]
        for authorization, status, total in sent:
            answer = await http_exchange(reader, writer, "/api/sessions", authorization)
            assert answer[0] == status, (authorization, answer)
            if total is not None:
                assert orjson.loads(answer[1])["total"] == total
        # The token was hashed only when the connection's header changed.
        assert resolved == [
            api.tokens["admin"],
            "cs_not_a_real_token",
            api.tokens["other"],
            api.tokens["admin"][:-1],
            api.tokens["admin"],
        ]
    finally:
        writer.close()
        await writer.wait_closed()
    assert registry.remembered_connections == kept_before + 1
    for _ in range(100):
        gc.collect()
        if registry.remembered_connections == kept_before:
            break
        await asyncio.sleep(0.01)
    assert registry.remembered_connections == kept_before
