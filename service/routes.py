"""Every route of the service, with the scope each /api route needs."""

from __future__ import annotations

from aiohttp import web

from . import handlers
from .appkeys import ROUTE_SCOPES
from .auth import DELETE, READ, WRITE

SESSION = "/api/sessions/{session_id:[^/]+}"


def setup_routes(app: web.Application) -> None:
    scopes = app[ROUTE_SCOPES]

    def api(method: str, path: str, handler: handlers.Handler, scope: str) -> None:
        route = app.router.add_route(method, path, handler)
        scopes[route] = scope

    app.router.add_get("/healthz", handlers.healthz)
    app.router.add_get("/readyz", handlers.readyz)
    app.router.add_get("/metrics", handlers.metrics)
    # Any valid token may read the document: it needs no scope.
    app.router.add_get("/api/openapi.json", handlers.openapi)

    api("GET", "/api/sessions", handlers.list_sessions, READ)
    api("POST", "/api/sessions", handlers.create_session, WRITE)
    # Before the {session_id} routes, so that "search" is not taken for an id.
    api("GET", "/api/sessions/search", handlers.search_sessions, READ)
    api("POST", "/api/messages", handlers.add_messages, WRITE)
    api("GET", SESSION, handlers.get_session, READ)
    api("PATCH", SESSION, handlers.rename_session, WRITE)
    api("DELETE", SESSION, handlers.delete_session, DELETE)
    api("POST", SESSION + "/title", handlers.set_title, WRITE)
    api("PUT", SESSION + "/title", handlers.set_title, WRITE)
    api("POST", SESSION + "/messages", handlers.add_message, WRITE)
    api("GET", SESSION + "/messages", handlers.history, READ)
    api("GET", SESSION + "/export", handlers.export_session, READ)
