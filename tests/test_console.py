"""/, /console/ and /docs over HTTP: what is served, with which headers, without a
token; and the rules the console's own files keep (no markup from data, no inline
script, the token only in sessionStorage and headers). The browser tests are in
test_console_browser.py."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import AsyncIterator
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from fakeredis import FakeServer
from fakeredis.aioredis import FakeRedis

from service.app import create_app
from service.console import CONSOLE_POLICY, DOCS_POLICY, SWAGGER_FILES
from service.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "service" / "static"
CONSOLE = STATIC / "console"
MODULES = sorted(CONSOLE.glob("*.js"))

Client = TestClient[Any, Any]


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    redis = FakeRedis(server=FakeServer())
    app = create_app(replace(settings, redis_url="redis://unused"), redis_client=redis)
    async with TestClient(TestServer(app)) as opened:
        yield opened
    await redis.aclose()


def directives(policy: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *values = part.split()
        found[name] = values
    return found


def assert_secured(headers: Any, policy: str = CONSOLE_POLICY) -> None:
    assert headers["Content-Security-Policy"] == policy
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"


@pytest.mark.parametrize("policy", [CONSOLE_POLICY, DOCS_POLICY])
def test_the_policies_allow_only_this_origin(policy: str) -> None:
    found = directives(policy)
    assert found["default-src"] == ["'none'"]
    assert found["script-src"] == ["'self'"]
    assert found["frame-ancestors"] == ["'none'"]
    assert found["base-uri"] == ["'none'"]
    for values in found.values():
        for value in values:
            # No inline code, no eval, no other origin, no scheme-wide source but data:
            # images (Swagger UI's icons).
            assert value in ("'self'", "'none'", "data:"), value
    assert found["img-src"] == ["'self'", "data:"]


async def test_root_redirects_to_the_console(client: Client) -> None:
    async with client.get("/", allow_redirects=False) as response:
        assert response.status == 302
        assert response.headers["Location"] == "console/"
        assert_secured(response.headers)
    async with client.get("/console", allow_redirects=False) as response:
        assert response.status == 301
        assert response.headers["Location"] == "console/"
    async with client.get("/") as response:
        assert response.status == 200
        assert str(response.url).endswith("/console/")
        assert "<title>chatsessions console</title>" in await response.text()


async def test_every_console_file_is_served_without_a_token(client: Client) -> None:
    for path in sorted(CONSOLE.iterdir()):
        async with client.get(f"/console/{path.name}") as response:
            assert response.status == 200, path.name
            assert await response.read() == path.read_bytes()
            assert_secured(response.headers)
            assert response.headers["Cache-Control"] == "no-cache"
            expected = {
                ".js": "text/javascript",
                ".css": "text/css",
                ".html": "text/html",
                ".svg": "image/svg+xml",
            }[path.suffix]
            assert response.headers["Content-Type"].startswith(expected)
    async with client.get("/console/") as response:
        assert await response.read() == (CONSOLE / "index.html").read_bytes()


async def test_an_unchanged_file_costs_a_304(client: Client) -> None:
    async with client.get("/console/app.js") as response:
        etag = response.headers["ETag"]
    async with client.get("/console/app.js", headers={"If-None-Match": etag}) as response:
        assert response.status == 304
        assert await response.read() == b""
        assert_secured(response.headers)
    async with client.get("/console/app.js", headers={"If-None-Match": '"other"'}) as response:
        assert response.status == 200


@pytest.mark.parametrize(
    "path",
    [
        "/console/missing.js",
        "/console/..%2fconsole.py",
        "/console/..%2f..%2fconsole.py",
        "/console/static/console/app.js",
        "/docs/swagger/index.html",
        "/docs/swagger/..%2f__init__.py",
        "/docs/missing.css",
        "/docs/x%0Ay",
        "/console/%0A",
    ],
)
async def test_only_the_packaged_files_are_reachable(client: Client, path: str) -> None:
    async with client.get(path) as response:
        assert response.status == 404
        assert (await response.json())["detail"]
        assert "Content-Security-Policy" in response.headers
        assert response.headers["X-Content-Type-Options"] == "nosniff"


async def test_head_and_wrong_methods(client: Client) -> None:
    async with client.head("/console/") as response:
        assert response.status == 200
        assert_secured(response.headers)
    async with client.post("/console/") as response:
        assert response.status == 405


async def test_docs_render_from_the_package_without_a_token(client: Client) -> None:
    async with client.get("/docs") as response:
        assert response.status == 200
        page = await response.text()
        assert_secured(response.headers, DOCS_POLICY)
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert "docs/swagger/swagger-ui-bundle.js" in sources
    for source in sources:
        async with client.get("/" + source) as response:
            assert response.status == 200, source
            assert "Content-Security-Policy" in response.headers
    async with client.get("/docs/", allow_redirects=False) as response:
        assert response.status == 301
        assert response.headers["Location"] == "../docs"
    for name in SWAGGER_FILES:
        async with client.get(f"/docs/swagger/{name}") as response:
            assert response.status == 200, name
    async with client.get("/docs/swagger/LICENSE") as response:
        assert "Apache License" in await response.text()


async def test_the_docs_document_needs_no_token_and_the_api_one_still_does(
    client: Client,
) -> None:
    async with client.get("/docs/openapi.json") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        assert await response.read() == (ROOT / "service" / "openapi.json").read_bytes()
    async with client.get("/api/openapi.json") as response:
        assert response.status == 401


# --- the console's files keep the rules the policy cannot -------------------------------------


class Markup(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline: list[str] = []
        self.styles: list[str] = []
        self.handlers: list[str] = []
        self.labels: set[str] = set()
        self.fields: list[str] = []
        self.forms: list[dict[str, str | None]] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.handlers += [name for name in found if name.startswith("on")]
        if "style" in found:
            self.styles.append(tag)
        if tag == "script":
            self.scripts.append(found)
            self._in_script = True
        if tag == "style":
            self.styles.append(tag)
        if tag == "label" and found.get("for"):
            self.labels.add(str(found["for"]))
        if tag in ("input", "select", "textarea") and found.get("type") != "hidden":
            self.fields.append(str(found.get("id")))
        if tag == "form":
            self.forms.append(found)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append(data)


@pytest.mark.parametrize("page", [CONSOLE / "index.html", STATIC / "docs" / "index.html"])
def test_pages_have_no_inline_script_style_or_handler(page: Path) -> None:
    markup = Markup()
    markup.feed(page.read_text())
    assert markup.scripts and all(script.get("src") for script in markup.scripts)
    assert markup.inline == [] and markup.styles == [] and markup.handlers == []
    assert not re.search(r"https?://", page.read_text()), "a page names no other origin"


def test_every_field_of_the_console_has_a_label_and_no_form_can_put_the_token_in_a_url() -> None:
    markup = Markup()
    markup.feed((CONSOLE / "index.html").read_text())
    assert set(markup.fields) <= markup.labels
    # A form submitted without the script (GET) would put its fields in the address.
    assert all(form.get("method") in ("post", "dialog") for form in markup.forms)


def test_the_console_builds_the_page_from_data_as_text_only() -> None:
    for module in [*MODULES, STATIC / "docs" / "docs.js"]:
        code = module.read_text()
        for sink in (".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in code, f"{module.name} uses {sink}"
        assert "new Function" not in code
        assert "localStorage" not in code, f"{module.name}: the token lives in sessionStorage"
        # The SVG namespace is a name, not an address anything is fetched from.
        origins = re.findall(r"https?://[^\s\"'`]*", code)
        assert set(origins) <= {"http://www.w3.org/2000/svg"}, f"{module.name}: {origins}"
    # The one place that writes the token, and the one that sends it.
    assert "sessionStorage.setItem(TOKEN_KEY, token)" in (CONSOLE / "app.js").read_text()
    assert "Authorization: `Bearer ${this.token}`" in (CONSOLE / "api.js").read_text()


def test_every_module_import_is_a_served_file() -> None:
    names = {module.name for module in MODULES}
    for module in MODULES:
        for target in re.findall(r'from "\./([^"]+)"', module.read_text()):
            assert target in names, f"{module.name} imports {target}"
    index = (CONSOLE / "index.html").read_text()
    for target in re.findall(r'(?:src|href)="([^"#]+)"', index):
        if not target.startswith(".."):
            assert (CONSOLE / target).exists(), target


def test_the_wheel_ships_every_static_file() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["service"]
    for path in STATIC.rglob("*"):
        if path.is_file():
            relative = path.relative_to(ROOT / "service").as_posix()
            assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative


def test_the_openapi_document_names_what_the_console_reads() -> None:
    """The console learns from /docs/openapi.json which filters and fields to offer: the
    names it looks for are the document's own spelling."""
    document = orjson.loads((ROOT / "service" / "openapi.json").read_bytes())
    listed = {p.get("name") for p in document["paths"]["/api/sessions"]["get"]["parameters"]}
    assert {"limit", "cursor", "channel", "active"} <= listed
    assert "patch" in document["paths"]["/api/sessions/{session_id}"]
    caps = (CONSOLE / "caps.js").read_text()
    for path in ("/api/sessions", "/api/sessions/counts", "/api/events"):
        assert f'"{path}"' in caps
