"""Typed settings: defaults < TOML file < environment (``CHATSESSIONS_*``).

A bad value never passes silently: loading raises :class:`ConfigError` naming the
key and the problem, and the CLI turns that into one line and exit code 2.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import orjson

ENV_PREFIX = "CHATSESSIONS_"
CONFIG_ENV = "CHATSESSIONS_CONFIG"

SCOPES = ("sessions:read", "sessions:write", "sessions:delete")
NAMESPACE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
# How every token starts (auth.TOKEN_PREFIX, which imports this module): a value that
# starts so was pasted where its hash belongs.
RAW_TOKEN_PREFIX = "cs_"
LOG_FORMATS = ("text", "json")
EVENT_TYPES = ("session.created", "session.updated", "session.deleted")
WEBHOOK_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ConfigError(ValueError):
    """A configuration value is missing, malformed or out of range."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem


@dataclass(frozen=True, slots=True)
class TokenConfig:
    """One API token, known only by the SHA-256 of its secret."""

    name: str
    sha256: str
    scopes: frozenset[str]
    namespace: str


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    """One endpoint that receives a namespace's events (SPEC §6). ``name`` labels its
    metrics and its delivery state in Redis, so the URL (which may hold a secret) is
    never shown; ``events`` None means every type."""

    name: str
    url: str
    secret: str
    namespace: str
    events: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    # None means: start the embedded redis-server under data_dir.
    redis_url: str | None = None
    redis_timeout: float = 2.0
    data_dir: Path = Path("data")
    default_namespace: str = "default"
    active_window: int = 900
    max_body_bytes: int = 1024 * 1024
    max_content_bytes: int = 64 * 1024
    max_metadata_bytes: int = 8 * 1024
    cors_origins: tuple[str, ...] = ()
    log_format: str = "text"
    # Requests per second per token; 0 turns rate limiting off.
    rate_limit: float = 0.0
    retry_after: int = 1
    # Expensive requests (search, history, export, batch ingest) of one namespace that
    # one worker runs at once; four times as many wait, beyond that 429 (service/admission.py).
    expensive_concurrency: int = 2
    # Seconds a connection may take to deliver a request (or idle between two) before
    # it is closed: the guard against clients that trickle their headers in.
    client_timeout: float = 15.0
    tokens: tuple[TokenConfig, ...] = field(default_factory=tuple)
    # Events each namespace's change feed keeps at least (trimmed approximately).
    events_retention: int = 100_000
    # Seconds between the comment lines that keep an idle event stream open.
    events_heartbeat: float = 15.0
    webhooks: tuple[WebhookConfig, ...] = field(default_factory=tuple)
    # Seconds an event is retried for (with backoff) before a webhook drops it.
    webhook_max_age: float = 3600.0
    # Seconds one webhook delivery may take before it counts as failed.
    webhook_timeout: float = 10.0
    # Days of inactivity after which a session is deleted (pinned ones never); 0 is off.
    retention_days: int = 0
    # The same for named namespaces, over retention_days.
    retention_days_by_namespace: tuple[tuple[str, int], ...] = ()

    @property
    def active_window_ms(self) -> int:
        return self.active_window * 1000

    def retention_for(self, namespace: str) -> int:
        """Days of inactivity after which the namespace's sessions go; 0 for never."""
        return dict(self.retention_days_by_namespace).get(namespace, self.retention_days)


def _int(key: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool):
        raise ConfigError(key, f"expected a whole number, got {value!r}")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise ConfigError(key, f"expected a whole number, got {value!r}") from None
    if not isinstance(value, int):
        raise ConfigError(key, f"expected a whole number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(key, f"must be between {low} and {high}, got {value}")
    return value


def _float(key: str, value: Any, low: float, high: float) -> float:
    if isinstance(value, bool):
        raise ConfigError(key, f"expected a number, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ConfigError(key, f"expected a number, got {value!r}") from None
    if not isinstance(value, int | float):
        raise ConfigError(key, f"expected a number, got {value!r}")
    if not low <= float(value) <= high:
        raise ConfigError(key, f"must be between {low:g} and {high:g}, got {value}")
    return float(value)


def _str(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, f"expected a non-empty string, got {value!r}")
    return value.strip()


def _namespace(key: str, value: Any) -> str:
    text = _str(key, value)
    if not NAMESPACE_PATTERN.match(text):
        raise ConfigError(key, "use 1-64 lowercase letters, digits, '_' or '-'")
    return text


def _redis_url(key: str, value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = _str(key, value)
    schemes = ("redis://", "rediss://", "unix://", "redis+cluster://", "rediss+cluster://")
    if not text.startswith(schemes):
        raise ConfigError(key, f"must start with one of {', '.join(schemes)}")
    return text


def _origins(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [part for part in (p.strip() for p in value.split(",")) if part]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(key, "expected a list of origins such as https://app.example.com")
    return tuple(value)


def parse_scopes(key: str, value: Any) -> frozenset[str]:
    """Accept full scope names or their short forms (``read,write,delete``)."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not value:
        raise ConfigError(key, f"expected a list of scopes from {', '.join(SCOPES)}")
    scopes = set()
    for item in value:
        name = item if isinstance(item, str) and ":" in item else f"sessions:{item}"
        if name not in SCOPES:
            raise ConfigError(key, f"unknown scope {item!r}; use {', '.join(SCOPES)}")
        scopes.add(name)
    return frozenset(scopes)


def _entries(
    key: str, value: Any, noun: str, fields: tuple[str, ...]
) -> list[tuple[str, Mapping[str, Any]]]:
    """A list of tables (from TOML, or JSON in an environment variable), each with its
    place for errors (``tokens[2]``), refusing keys outside ``fields``."""
    if isinstance(value, str):
        if not value.strip():
            return []
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise ConfigError(key, f"expected a JSON list of {noun} entries") from None
    if not isinstance(value, list):
        raise ConfigError(key, f"expected a list of {noun} entries")
    entries = []
    for position, entry in enumerate(value):
        where = f"{key}[{position}]"
        if not isinstance(entry, Mapping):
            raise ConfigError(where, f"expected a table with {', '.join(fields)}")
        unknown = set(entry) - set(fields)
        if unknown:
            raise ConfigError(f"{where}.{sorted(unknown)[0]}", "unknown key")
        entries.append((where, entry))
    return entries


def _tokens(key: str, value: Any, default_namespace: str) -> tuple[TokenConfig, ...]:
    tokens: list[TokenConfig] = []
    for where, entry in _entries(key, value, "token", ("name", "sha256", "scopes", "namespace")):
        digest = entry.get("sha256")
        if isinstance(digest, str) and digest.strip().startswith(RAW_TOKEN_PREFIX):
            # Never echo it: it is a secret, and this error is printed at start-up.
            raise ConfigError(
                f"{where}.sha256",
                "holds a token itself, not its hash; put the output of "
                "`chatsessions token hash` here (it reads the token on standard input) "
                "and keep the token only in the client",
            )
        if not isinstance(digest, str) or not SHA256_PATTERN.match(digest.lower()):
            raise ConfigError(f"{where}.sha256", "expected 64 hex digits (the token's SHA-256)")
        tokens.append(
            TokenConfig(
                name=_str(f"{where}.name", entry.get("name")),
                sha256=digest.lower(),
                scopes=parse_scopes(f"{where}.scopes", entry.get("scopes")),
                namespace=_namespace(
                    f"{where}.namespace", entry.get("namespace", default_namespace)
                ),
            )
        )
    return tuple(tokens)


def _webhooks(key: str, value: Any, default_namespace: str) -> tuple[WebhookConfig, ...]:
    webhooks: list[WebhookConfig] = []
    fields = ("name", "url", "secret", "namespace", "events")
    for position, (where, entry) in enumerate(_entries(key, value, "webhook", fields)):
        url = _str(f"{where}.url", entry.get("url"))
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}.url", "must start with http:// or https://")
        name = _str(f"{where}.name", entry.get("name", f"webhook-{position + 1}"))
        if not WEBHOOK_NAME_PATTERN.match(name):
            raise ConfigError(f"{where}.name", "use 1-64 letters, digits, '_', '.' or '-'")
        if name in {w.name for w in webhooks}:
            raise ConfigError(f"{where}.name", f"{name!r} names another webhook already")
        events = entry.get("events")
        if events is not None:
            if not isinstance(events, list) or not all(e in EVENT_TYPES for e in events):
                raise ConfigError(f"{where}.events", f"expected a list of {', '.join(EVENT_TYPES)}")
            events = frozenset(events)
        webhooks.append(
            WebhookConfig(
                name=name,
                url=url,
                secret=_str(f"{where}.secret", entry.get("secret")),
                namespace=_namespace(
                    f"{where}.namespace", entry.get("namespace", default_namespace)
                ),
                events=events,
            )
        )
    return tuple(webhooks)


def _retention(key: str, value: Any) -> tuple[tuple[str, int], ...]:
    if isinstance(value, str):
        try:
            value = orjson.loads(value) if value.strip() else {}
        except orjson.JSONDecodeError:
            raise ConfigError(key, 'expected a JSON object such as {"support": 90}') from None
    if not isinstance(value, Mapping):
        raise ConfigError(key, "expected a table of namespace = days")
    return tuple(
        (_namespace(f"{key}.{name}", name), _int(f"{key}.{name}", days, 0, 100 * 365))
        for name, days in sorted(value.items())
    )


def _apply(settings: Settings, raw: Mapping[str, Any], source: str) -> Settings:
    """Validate the raw values of one source and lay them over ``settings``."""
    known = {f.name for f in fields(Settings)}
    changes: dict[str, Any] = {}
    for name, value in raw.items():
        key = f"{source}{name.upper()}" if source else name
        if name not in known:
            raise ConfigError(key, "unknown key")
        match name:
            case "host":
                changes[name] = _str(key, value)
            case "port":
                changes[name] = _int(key, value, 0, 65535)
            case "workers":
                changes[name] = _int(key, value, 1, 64)
            case "redis_url":
                changes[name] = _redis_url(key, value)
            case "redis_timeout":
                changes[name] = _float(key, value, 0.05, 60.0)
            case "data_dir":
                changes[name] = Path(_str(key, value))
            case "default_namespace":
                changes[name] = _namespace(key, value)
            case "active_window":
                changes[name] = _int(key, value, 1, 365 * 24 * 3600)
            case "max_body_bytes":
                changes[name] = _int(key, value, 1024, 64 * 1024 * 1024)
            case "max_content_bytes":
                changes[name] = _int(key, value, 1, 16 * 1024 * 1024)
            case "max_metadata_bytes":
                changes[name] = _int(key, value, 2, 1024 * 1024)
            case "cors_origins":
                changes[name] = _origins(key, value)
            case "log_format":
                text = _str(key, value)
                if text not in LOG_FORMATS:
                    raise ConfigError(key, f"must be one of {', '.join(LOG_FORMATS)}")
                changes[name] = text
            case "rate_limit":
                changes[name] = _float(key, value, 0.0, 1e6)
            case "retry_after":
                changes[name] = _int(key, value, 1, 3600)
            case "expensive_concurrency":
                changes[name] = _int(key, value, 1, 1024)
            case "client_timeout":
                changes[name] = _float(key, value, 0.1, 3600.0)
            case "tokens":
                namespace = changes.get("default_namespace", settings.default_namespace)
                changes[name] = _tokens(key, value, namespace)
            case "events_retention":
                changes[name] = _int(key, value, 1000, 100_000_000)
            case "events_heartbeat":
                changes[name] = _float(key, value, 0.5, 3600.0)
            case "webhooks":
                namespace = changes.get("default_namespace", settings.default_namespace)
                changes[name] = _webhooks(key, value, namespace)
            case "webhook_max_age":
                changes[name] = _float(key, value, 1.0, 30 * 24 * 3600.0)
            case "webhook_timeout":
                changes[name] = _float(key, value, 0.1, 600.0)
            case "retention_days":
                changes[name] = _int(key, value, 0, 100 * 365)
            case "retention_days_by_namespace":
                changes[name] = _retention(key, value)
    return replace(settings, **changes)


def load_settings(
    config_path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build settings from defaults, then the TOML file, then the environment."""
    env = os.environ if environ is None else environ
    settings = Settings()
    path = config_path if config_path is not None else env.get(CONFIG_ENV)
    if path:
        try:
            with open(path, "rb") as handle:
                raw = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError("config", f"file {os.fspath(path)!r} does not exist") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError("config", f"{os.fspath(path)!r} is not valid TOML: {error}") from None
        settings = _apply(settings, raw, "")
    from_env = {
        name[len(ENV_PREFIX) :].lower(): value
        for name, value in env.items()
        if name.startswith(ENV_PREFIX) and name != CONFIG_ENV
    }
    if from_env:
        settings = _apply(settings, from_env, ENV_PREFIX)
    return settings
