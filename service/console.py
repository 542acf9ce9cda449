"""The operator console (``/console/``) and the API docs for people (``/docs``).

Both are static files served from the installed packages: the console from
``service/static/console``, the docs page from ``service/static/docs`` with Swagger UI's
own files from the ``swagger_ui`` package (swagger-ui-py). Nothing is fetched from
another origin, and nothing is built at install.

Every answer of these routes, errors and redirects included, carries
:data:`SECURITY_HEADERS` and a Content-Security-Policy that allows scripts and styles
from this origin only: no inline script can run in these pages, whatever a session's
title or message holds. Neither page needs a token to load; the console asks for one and
sends it to ``/api`` itself, and ``/docs`` reads the OpenAPI document from
``/docs/openapi.json``, which needs none (``/api/openapi.json`` still does).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable

from aiohttp import web

from .appkeys import OPENAPI
from .edge import edge
from .errors import error_response
from .handlers import Handler

# Swagger UI's files that /docs uses, served under /docs/swagger/; nothing else of the
# package is reachable.
SWAGGER_PACKAGE = "swagger_ui"
SWAGGER_FILES = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "LICENSE"})

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".json": "application/json",
    ".txt": "text/plain; charset=utf-8",
}
# Files without a known suffix (a LICENSE) are shown as text.
DEFAULT_TYPE = "text/plain; charset=utf-8"


def policy(*directives: str) -> str:
    return "; ".join(directives)


# 'self' only: no inline script or style, no eval, no other origin; the console draws
# its chart as SVG elements and sets styles through the CSSOM, which CSP allows.
CONSOLE_POLICY = policy(
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
)
# Swagger UI draws its icons as data: images and sends "Try it out" requests to this
# origin; it needs nothing more.
DOCS_POLICY = CONSOLE_POLICY

SECURITY_HEADERS: Mapping[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # For browsers older than frame-ancestors.
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def asset_of(name: str, body: bytes) -> Asset:
    suffix = name[name.rfind(".") :] if "." in name else ""
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    return Asset(body, CONTENT_TYPES.get(suffix, DEFAULT_TYPE), etag)


def walk(folder: Traversable, prefix: str = "") -> dict[str, Asset]:
    found: dict[str, Asset] = {}
    for entry in folder.iterdir():
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        if entry.is_dir():
            found.update(walk(entry, f"{prefix}{entry.name}/"))
        else:
            found[prefix + entry.name] = asset_of(entry.name, entry.read_bytes())
    return found


@functools.cache
def static_assets(folder: str) -> Mapping[str, Asset]:
    """Every file under ``service/static/<folder>``, by its path there, read once per
    process: a request can only name a file that is in this map."""
    return walk(resources.files("service").joinpath("static", folder))


@functools.cache
def swagger_asset(name: str) -> Asset | None:
    if name not in SWAGGER_FILES:
        return None
    try:
        folder = resources.files(SWAGGER_PACKAGE).joinpath("static")
        return asset_of(name, folder.joinpath(name).read_bytes())
    except (ModuleNotFoundError, FileNotFoundError):
        return None


def secured(response: web.Response, content_policy: str) -> web.Response:
    response.headers.update(SECURITY_HEADERS)
    response.headers["Content-Security-Policy"] = content_policy
    return response


def redirect(location: str, content_policy: str, status: int = 302) -> web.Response:
    # Relative locations, so that the pages work behind a proxy that mounts the service
    # under a path prefix.
    return secured(web.Response(status=status, headers={"Location": location}), content_policy)


def not_found(request: web.Request, content_policy: str) -> web.Response:
    return secured(
        error_response(404, f"No file at {request.path}; the console is at /console/."),
        content_policy,
    )


def serve_asset(request: web.Request, asset: Asset, content_policy: str) -> web.Response:
    # Every load asks whether the file changed (no-cache), and an unchanged file costs a
    # 304: an upgraded service is never shown with the scripts of the one before.
    headers = {"ETag": asset.etag, "Cache-Control": "no-cache"}
    if asset.etag in request.headers.get("If-None-Match", ""):
        return secured(web.Response(status=304, headers=headers), content_policy)
    response = web.Response(body=asset.body, headers=headers)
    response.headers["Content-Type"] = asset.content_type
    return secured(response, content_policy)


async def root(request: web.Request) -> web.Response:
    return redirect("console/", CONSOLE_POLICY)


async def console_bare(request: web.Request) -> web.Response:
    return redirect("console/", CONSOLE_POLICY, status=301)


async def console_file(request: web.Request) -> web.Response:
    name = request.match_info["path"] or "index.html"
    asset = static_assets("console").get(name)
    if asset is None:
        return not_found(request, CONSOLE_POLICY)
    return serve_asset(request, asset, CONSOLE_POLICY)


async def docs_page(request: web.Request) -> web.Response:
    return serve_asset(request, static_assets("docs")["index.html"], DOCS_POLICY)


async def docs_file(request: web.Request) -> web.Response:
    name = request.match_info["path"]
    if name == "":
        return redirect("../docs", DOCS_POLICY, status=301)
    if name == "openapi.json":
        document = request.app[OPENAPI]
        return serve_asset(request, asset_of(name, document), DOCS_POLICY)
    found = (
        swagger_asset(name.removeprefix("swagger/"))
        if name.startswith("swagger/")
        else static_assets("docs").get(name)
    )
    if found is None:
        return not_found(request, DOCS_POLICY)
    return serve_asset(request, found, DOCS_POLICY)


# The rest of a path, whatever it holds: a percent-encoded newline too, which '.' would
# leave to aiohttp's plain-text 404 instead of this module's answer.
REST = r"[\s\S]*"


def setup_console(app: web.Application) -> None:
    """Add the console's and the docs' routes (GET and HEAD); before the last route,
    which takes every path."""

    def get(template: str, handler: Handler) -> None:
        # {path} in a template takes the rest of the path.
        path = template.replace("{path}", "{path:" + REST + "}")
        app.router.add_get(path, edge(app, handler, template))

    get("/", root)
    get("/console", console_bare)
    get("/console/{path}", console_file)
    get("/docs", docs_page)
    get("/docs/{path}", docs_file)
