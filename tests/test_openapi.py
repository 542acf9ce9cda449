"""The OpenAPI document and the router describe exactly the same routes, and the
answers the service gives: statuses, headers and fields."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from service.app import create_app, make_runner
from service.edge import unavailable_detail
from service.settings import Settings
from service.store import OutcomeUnknown, RedisClient

from conftest import Api, Tokens
from redis_process import free_port

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "service" / "openapi.json"
METHODS = {"get", "post", "put", "patch", "delete"}
# How an operation that writes begins its description: with the scope it needs.
WRITE_SCOPES = ("Needs the `sessions:write` scope.", "Needs the `sessions:delete` scope.")
# A hang guard for the raw requests below; the deadline they meet is CLIENT_TIMEOUT.
CLIENT_TIMEOUT = 1.0
ANSWER_GUARD = 30.0


def load() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(DOCUMENT.read_text())
    return document


def api_operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, spec)
        for path, item in document["paths"].items()
        for method, spec in item.items()
        if method in METHODS and path.startswith("/api/")
    ]


def router_operations(app: web.Application) -> set[tuple[str, str]]:
    found = set()
    for route in app.router.routes():
        # "*" is the last route, which only answers 404 and 405.
        if route.method in ("HEAD", "*") or route.resource is None:
            continue
        path = re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route.resource.canonical)
        found.add((route.method.lower(), path))
    return found


def document_operations(document: dict[str, object]) -> set[tuple[str, str]]:
    paths = document["paths"]
    assert isinstance(paths, dict)
    return {(method, path) for path, item in paths.items() for method in item if method in METHODS}


def test_every_route_is_documented_and_every_documented_route_exists(settings: Settings) -> None:
    document = json.loads(DOCUMENT.read_text())
    app = create_app(settings)
    routes = router_operations(app)
    documented = document_operations(document)
    assert routes - documented == set(), "routes missing from service/openapi.json"
    assert documented - routes == set(), "documented routes the service does not have"
    assert len(routes) >= 15


def test_document_is_openapi_3_1_and_matches_its_source() -> None:
    document = json.loads(DOCUMENT.read_text())
    assert document["openapi"].startswith("3.1")
    generated = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "openapi_source.py")],
        capture_output=True,
        check=True,
    ).stdout
    assert json.loads(generated) == document, "regenerate service/openapi.json from tools/"


def test_every_api_operation_documents_its_errors() -> None:
    document = json.loads(DOCUMENT.read_text())
    for path, item in document["paths"].items():
        for method, spec in item.items():
            if method not in METHODS or not path.startswith("/api/"):
                continue
            assert {"401", "503"} <= set(spec["responses"]), (method, path)
            if "{session_id}" in path and path != "/api/openapi.json":
                assert "404" in spec["responses"] or method == "post", (method, path)


async def test_document_is_served_to_any_valid_token(api: Api) -> None:
    status, body = await api.call("GET", "/api/openapi.json", token="reader")
    assert status == 200 and body["openapi"] == "3.1.0"
    status, _ = await api.call("GET", "/api/openapi.json", token=None)
    assert status == 401


def admitted_operations(app: web.Application) -> set[tuple[str, str]]:
    """The routes whose handler runs through service.admission, read from the handler
    that service.edge wraps."""
    found = set()
    for route in app.router.routes():
        if route.method in ("HEAD", "*") or route.resource is None:
            continue
        inner = inspect.getclosurevars(route.handler).nonlocals.get("handler")
        assert inner is not None, f"{route} is not wrapped by service.edge.edge"
        if inner.__qualname__.startswith("Admission.admitted"):
            path = re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route.resource.canonical)
            found.add((route.method.lower(), path))
    return found


def test_admitted_routes_document_their_429(settings: Settings) -> None:
    document = load()
    admitted = admitted_operations(create_app(settings))
    # SPEC §3 "Fair sharing": these at least; a route added later may be admitted too.
    assert admitted >= {
        ("get", "/api/sessions/search"),
        ("get", "/api/sessions/{session_id}/messages"),
        ("get", "/api/sessions/{session_id}/export"),
        ("get", "/api/export"),
        ("post", "/api/messages"),
    }
    for method, path, spec in api_operations(document):
        too_many = spec["responses"]["429"]["description"]
        says_admission = "expensive_concurrency" in too_many
        assert says_admission == ((method, path) in admitted), (method, path)
        assert ("expensive_concurrency" in spec.get("description", "")) == says_admission


def test_retry_after_is_documented_wherever_it_is_sent() -> None:
    document = load()
    answers = [spec["responses"] for _, _, spec in api_operations(document)]
    answers.append(document["paths"]["/readyz"]["get"]["responses"])
    for responses in answers:
        for code in ("429", "503"):
            if code in responses:
                assert responses[code]["headers"]["Retry-After"]["required"] is True
    readiness = document["paths"]["/readyz"]["get"]
    assert "503" in readiness["responses"]
    assert "cs:readiness-probe" in readiness["description"]


def test_writes_document_the_outcome_unknown_503_as_the_service_words_it() -> None:
    said = unavailable_detail(OutcomeUnknown("Redis did not answer in time"))
    assert "Repeating the request with the same ids is safe" in said
    writes = 0
    for method, path, spec in api_operations(load()):
        unavailable = spec["responses"]["503"]["description"]
        write = spec.get("description", "").startswith(WRITE_SCOPES)
        writes += write
        assert ("outcome is unknown" in unavailable) == write, (method, path)
        if write:
            assert "repeating the request with the same ids is safe" in unavailable
    # create, batch, ingest, change (PATCH), rename (POST, PUT), delete, mark read, bulk
    # and erasure
    assert writes == 10


async def test_search_answers_the_fields_the_document_gives(api: Api) -> None:
    schema = load()["components"]["schemas"]["SearchResults"]
    for session_id, timestamp in (("older", 1_700_000_000), ("newer", 1_700_000_060)):
        await api.ingest(session_id, content="documented prime", timestamp=timestamp)
    status, first = await api.call("GET", "/api/sessions/search?q=prime&limit=1")
    assert status == 200, first
    assert set(first) == set(schema["properties"]) == set(schema["required"])
    assert (first["complete"], type(first["next_cursor"])) == (False, str)
    cursor = first["next_cursor"]
    status, rest = await api.call("GET", f"/api/sessions/search?q=prime&limit=5&cursor={cursor}")
    assert status == 200, rest
    assert set(rest) == set(schema["properties"])
    assert (rest["complete"], rest["next_cursor"]) == (True, None)
    assert [hit["id"] for hit in first["sessions"] + rest["sessions"]] == ["newer", "older"]
    documented = {p["name"] for p in load()["paths"]["/api/sessions/search"]["get"]["parameters"]}
    assert documented == {"q", "limit", "cursor"}


@pytest.fixture
async def served_port(redis_client: RedisClient, settings: Settings) -> AsyncIterator[int]:
    app = create_app(replace(settings, client_timeout=CLIENT_TIMEOUT), redis_client=redis_client)
    runner = make_runner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port
    await runner.cleanup()


async def status_of_half_sent_body(port: int, method: str, path: str, token: str) -> int:
    """The status answered to a request that announces a body and sends one byte of it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            f"{method.upper()} {path} HTTP/1.1\r\nHost: localhost\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n{".encode()
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), ANSWER_GUARD)
        return int(status_line.split()[1])
    finally:
        writer.close()


async def test_exactly_the_routes_documented_with_a_body_answer_408_for_a_slow_one(
    served_port: int, tokens: Tokens
) -> None:
    operations = api_operations(load())
    statuses = await asyncio.gather(
        *(
            status_of_half_sent_body(
                served_port, method, path.replace("{session_id}", "s1"), tokens["admin"]
            )
            for method, path, _ in operations
        )
    )
    for (method, path, spec), status in zip(operations, statuses, strict=True):
        takes_body = "requestBody" in spec
        assert (status == 408) == takes_body, (method, path, status)
        assert ("408" in spec["responses"]) == takes_body, (method, path)
