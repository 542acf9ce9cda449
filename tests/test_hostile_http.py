"""Malformed HTTP over real sockets: each request aiohttp's parser refuses is answered
4xx on a connection then closed, the service goes on serving, and no log line holds
a token, however the request quoted it (SPEC §4; issue 19 items 4 and 6)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from serve_process import ServeProcess, token_env

from service.app import create_app, make_runner
from service.appkeys import METRICS
from service.auth import new_token
from service.settings import Settings, TokenConfig
from service.store import RedisClient

from conftest import Tokens
from redis_process import RedisProcess, free_port

# A hang guard for one answer: far beyond anything the service takes.
ANSWER_LIMIT = 30.0
# The shortest piece of a secret that must not appear in a log: long enough never to
# turn up by chance, short enough to catch a secret cut short by a message.
FRAGMENT = 10
REDACTION_NOTE = "the request's bytes are not logged"


def hostile_requests(token: str, opaque: str) -> dict[str, bytes]:
    """Requests the parser refuses, each holding ``token`` (a bearer token of ours) or
    ``opaque`` (a secret with nothing in it to recognise)."""
    secret, hidden = token.encode(), opaque.encode()
    auth = b"Authorization: Bearer " + secret
    get = b"GET /api/sessions HTTP/1.1\r\nHost: localhost\r\n"
    post = b"POST /api/messages HTTP/1.1\r\nHost: localhost\r\n" + auth + b"\r\n"
    many = b"".join(b"X-H%d: v\r\n" % n for n in range(300))
    parts = {
        "control character in Authorization": [get, auth, b"\x01\r\n"],
        "NUL in Authorization": [get, auth, b"\x00\r\n"],
        "Authorization over 8190 bytes": [get, auth, b"a" * 9000, b"\r\n"],
        "token after 8190 bytes": [get, b"Authorization: Bearer ", b"a" * 8190, secret, b"\r\n"],
        "300 headers": [get, auth, b"\r\n", many],
        "obs-fold of our token": [get, b"Authorization: Bearer\r\n ", secret, b"\r\n"],
        "obs-fold of an opaque secret": [get, b"Authorization: Bearer\r\n ", hidden, b"\r\n"],
        "duplicate Content-Length": [post, b"Content-Length: 1\r\nContent-Length: 2\r\n"],
        "bad Content-Length": [post, b"Content-Length: 1x\r\n"],
        "Content-Length with Transfer-Encoding": [
            post,
            b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        ],
        "unknown method": [b"G@T /api/sessions HTTP/1.1\r\nHost: localhost\r\n", auth, b"\r\n"],
        "request line over 8190 bytes": [b"GET /", secret, b"a" * 9000, b" HTTP/1.1\r\n"],
        "token in a bad header name": [get, secret, b"\x7f: v\r\n"],
    }
    return {name: b"".join(request) + b"\r\n" for name, request in parts.items()}


async def exchange(port: int, raw: bytes) -> bytes:
    """Everything the server answers to ``raw``, up to its closing the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), ANSWER_LIMIT)
    except ConnectionError:
        return b""
    finally:
        writer.close()


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def fragments(secret: str) -> set[str]:
    return {secret[i : i + FRAGMENT] for i in range(len(secret) - FRAGMENT + 1)}


def leaked(text: str, *secrets_: str) -> list[str]:
    return sorted(f for secret in secrets_ for f in fragments(secret) if f in text)


async def send_all_hostile(port: int, token: str, opaque: str) -> dict[str, int]:
    statuses = {}
    for name, raw in hostile_requests(token, opaque).items():
        answer = await exchange(port, raw)
        statuses[name] = status_of(answer) if answer else 0
    return statuses


async def authorized_status(port: int, token: str) -> int:
    answer = await exchange(
        port,
        b"GET /api/sessions HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        + f"Authorization: Bearer {token}\r\n\r\n".encode(),
    )
    return status_of(answer)


@pytest.mark.real
@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_refused_requests_leave_no_token_in_the_serve_log(
    tmp_path: Path, redis_server: RedisProcess, log_format: str
) -> None:
    token, opaque = new_token(), secrets.token_hex(16)
    env = {
        **token_env(token),
        "CHATSESSIONS_REDIS_URL": redis_server.url,
        "CHATSESSIONS_LOG_FORMAT": log_format,
    }
    service = ServeProcess(tmp_path, env=env).start()
    try:
        statuses = await send_all_hostile(service.port, token, opaque)
        still_serving = await authorized_status(service.port, token)
    finally:
        service.stop()
    assert {name: status for name, status in statuses.items() if not 400 <= status < 500} == {}
    assert still_serving == 200
    log = service.log()
    assert leaked(log, token, opaque) == []
    assert REDACTION_NOTE in log  # the refusals were logged, without their bytes


async def test_refused_requests_leave_no_token_in_any_record(
    redis_client: RedisClient,
    settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same under a test server, whose logging is pytest's, not configure_logging's:
    the records themselves are clean, at every level."""
    token, opaque = new_token(), secrets.token_hex(16)
    config = TokenConfig(
        name="hostile",
        sha256=hashlib.sha256(token.encode()).hexdigest(),
        scopes=frozenset({"sessions:read"}),
        namespace="default",
    )
    app = create_app(
        replace(settings, redis_url="redis://unused", tokens=(*settings.tokens, config)),
        redis_client=redis_client,
    )
    caplog.set_level(logging.DEBUG)
    async with TestServer(app) as server:
        assert server.port is not None
        statuses = await send_all_hostile(server.port, token, opaque)
        assert await authorized_status(server.port, token) == 200
    assert all(400 <= status < 500 for status in statuses.values()), statuses
    texts: list[Callable[[logging.LogRecord], str | None]] = [
        logging.LogRecord.getMessage,
        lambda record: record.exc_text,
        lambda record: record.stack_info,
    ]
    rendered = [text(record) or "" for record in caplog.records for text in texts]
    assert leaked("\n".join(rendered) + caplog.text, token, opaque) == []
    assert any(REDACTION_NOTE in text for text in rendered)


# --- bodies aiohttp cannot read ---------------------------------------------------------------

POLL = 0.05


@pytest.fixture
async def body_server(
    redis_client: RedisClient, settings: Settings
) -> AsyncIterator[tuple[int, web.Application]]:
    """The app on the runner `serve` uses (a test server cancels a handler whose client
    left, which `serve` does not)."""
    app = create_app(replace(settings, redis_url="redis://unused"), redis_client=redis_client)
    runner = make_runner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port, app
    await runner.cleanup()


def post_head(token: str, *headers: str) -> bytes:
    lines = [
        "POST /api/sessions HTTP/1.1",
        "Host: localhost",
        f"Authorization: Bearer {token}",
        "Content-Type: application/json",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def answered(app: web.Application, status: int) -> None:
    """Until the edge has counted one POST /api/sessions answered ``status``."""
    requests = app[METRICS].counts.requests
    for _ in range(int(ANSWER_LIMIT / POLL)):
        if requests.get(("POST", "/api/sessions", status)):
            return
        await asyncio.sleep(POLL)
    raise AssertionError(f"no POST /api/sessions answered {status}: {dict(requests)}")


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        (("Content-Encoding: gzip", "Content-Length: 5"), b"abcde"),
        (("Content-Encoding: deflate", "Transfer-Encoding: chunked"), b"5\r\nabcde\r\n0\r\n\r\n"),
    ],
)
async def test_a_body_that_cannot_be_decoded_is_a_400_not_a_500(
    body_server: tuple[int, web.Application],
    tokens: Tokens,
    caplog: pytest.LogCaptureFixture,
    headers: tuple[str, ...],
    body: bytes,
) -> None:
    port, app = body_server
    answer = await exchange(port, post_head(tokens["admin"], *headers) + body)
    await answered(app, 400)
    status, _, detail = answer.partition(b"\r\n\r\n")
    assert status_of(answer) == 400
    assert b"could not be decoded" in detail
    assert not [r for r in caplog.records if r.name == "chatsessions" and r.levelno >= 40]


async def test_a_client_leaving_mid_body_is_not_an_error(
    body_server: tuple[int, web.Application],
    tokens: Tokens,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port, app = body_server
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(post_head(tokens["admin"], "Content-Length: 100") + b"{")
    await writer.drain()
    writer.close()
    await answered(app, 400)
    assert not app[METRICS].counts.requests.get(("POST", "/api/sessions", 500))
    assert not [r for r in caplog.records if r.name == "chatsessions" and r.levelno >= 40]
