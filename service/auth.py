"""Bearer tokens: known by their SHA-256 only, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from .settings import TokenConfig

READ = "sessions:read"
WRITE = "sessions:write"
DELETE = "sessions:delete"

TOKEN_PREFIX = "cs_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the token's name, what it may do and where."""

    name: str
    scopes: frozenset[str]
    namespace: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    """A fresh secret: 256 random bits, URL- and shell-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class TokenRegistry:
    """Resolves a presented token to its principal without leaking timing."""

    def __init__(self, tokens: tuple[TokenConfig, ...]) -> None:
        self._entries = tuple(
            (bytes.fromhex(t.sha256), Principal(t.name, t.scopes, t.namespace)) for t in tokens
        )

    def __len__(self) -> int:
        return len(self._entries)

    def resolve(self, token: str) -> Principal | None:
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found: Principal | None = None
        # Every entry is compared, so the time taken says nothing about which matched.
        for expected, principal in self._entries:
            if hmac.compare_digest(digest, expected):
                found = principal
        return found


def parse_bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None
