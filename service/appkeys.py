"""Typed keys for everything the app and its requests carry."""

from __future__ import annotations

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute

from .auth import Principal, TokenRegistry
from .feed import FeedHub
from .logs import AccessLog
from .metrics import Metrics
from .ratelimit import RateLimiter
from .settings import Settings
from .store import SessionStore
from .webhooks import Timing, Webhooks

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", SessionStore)
TOKENS = web.AppKey("tokens", TokenRegistry)
# This worker's change feed hub (service/feed.py), while the app runs.
FEED = web.AppKey("feed", FeedHub)
METRICS = web.AppKey("metrics", Metrics)
ACCESS_LOG = web.AppKey("access_log", AccessLog)
# The OpenAPI document, read once from service/openapi.json.
OPENAPI = web.AppKey("openapi", bytes)
# Present only when a rate limit is configured.
RATE_LIMITER = web.AppKey("rate_limiter", RateLimiter)
# The scope each /api route needs; routes missing here need only a valid token.
ROUTE_SCOPES = web.AppKey("route_scopes", dict[AbstractRoute, str])
# This worker's webhook deliveries (service/webhooks.py), while the app runs.
WEBHOOKS = web.AppKey("webhooks", Webhooks)
# The webhooks' retry and lease timing, when not the default (tests make it short).
WEBHOOK_TIMING = web.AppKey("webhook_timing", Timing)
# Seconds between the retention sweeps (service/sweeper.py), when not the default
# (tests make it short).
SWEEP_INTERVAL = web.AppKey("sweep_interval", float)

PRINCIPAL = web.RequestKey("principal", Principal)
