"""Every route of the service, with the scope each /api route needs, each handler
wrapped in :func:`service.edge.edge`."""

from __future__ import annotations

import re

from aiohttp import web

from . import export_handlers, feed_handlers, handlers
from .admission import Admission
from .appkeys import ROUTE_SCOPES, SETTINGS
from .auth import DELETE, READ, WRITE
from .console import setup_console
from .edge import UNMATCHED, edge, unmatched

SESSION = "/api/sessions/{session_id:[^/]+}"


def setup_routes(app: web.Application) -> None:
    scopes = app[ROUTE_SCOPES]
    settings = app[SETTINGS]
    # Expensive routes take one of their namespace's slots in this worker while they run,
    # waiting for one at most as long as a Redis round trip may take.
    admitted = Admission(
        settings.expensive_concurrency, settings.retry_after, wait=settings.redis_timeout
    ).admitted

    def add(method: str, path: str, handler: handlers.Handler, scope: str | None = None) -> None:
        # The template without the id pattern, as metrics and the log name the route.
        template = re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)
        route = app.router.add_route(method, path, edge(app, handler, template, scope))
        if scope is not None:
            scopes[route] = scope

    def probe(path: str, handler: handlers.Handler) -> None:
        # GET and HEAD, for load balancers and health checks that only ask for headers.
        app.router.add_get(path, edge(app, handler, path))

    probe("/healthz", handlers.healthz)
    probe("/readyz", handlers.readyz)
    probe("/metrics", handlers.metrics)
    # Any valid token may read the document: it needs no scope.
    probe("/api/openapi.json", handlers.openapi)

    # Any valid token may ask who it is.
    add("GET", "/api/whoami", handlers.whoami)
    add("GET", "/api/sessions", handlers.list_sessions, READ)
    add("GET", "/api/events", feed_handlers.events, READ)
    add("POST", "/api/sessions", handlers.create_session, WRITE)
    # Before the {session_id} routes, so that "search" is not taken for an id.
    add("GET", "/api/sessions/search", admitted(handlers.search_sessions), READ)
    add("GET", "/api/sessions/counts", handlers.session_counts, READ)
    add("POST", "/api/sessions/bulk", admitted(handlers.bulk), WRITE)
    add("DELETE", "/api/users/{user:[^/]+}", admitted(handlers.erase_user), DELETE)
    add("POST", "/api/messages", admitted(handlers.add_messages), WRITE)
    # aiohttp tries the routes under /api/sessions in the order they were added, each
    # with a regular expression: ingest, the busiest, comes first after the list.
    add("POST", SESSION + "/messages", handlers.add_message, WRITE)
    add("GET", SESSION + "/messages", admitted(handlers.history), READ)
    add("GET", SESSION, handlers.get_session, READ)
    add("PATCH", SESSION, handlers.update_session, WRITE)
    add("DELETE", SESSION, handlers.delete_session, DELETE)
    add("POST", SESSION + "/title", handlers.set_title, WRITE)
    add("PUT", SESSION + "/title", handlers.set_title, WRITE)
    add("GET", SESSION + "/export", admitted(handlers.export_session), READ)
    add("POST", SESSION + "/read", handlers.mark_read, WRITE)
    add("GET", "/api/export", admitted(export_handlers.export_namespace), READ)
    setup_console(app)
    # Last: whatever no route above takes (a percent-encoded newline too, which '.' would
    # leave to aiohttp's plain-text 404).
    app.router.add_route("*", r"/{path:[\s\S]*}", edge(app, unmatched, UNMATCHED))
