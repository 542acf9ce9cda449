"""The OpenAPI document and the router describe exactly the same routes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from aiohttp import web

from service.app import create_app
from service.settings import Settings

from conftest import Api

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "service" / "openapi.json"
METHODS = {"get", "post", "put", "patch", "delete"}


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
