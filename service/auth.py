"""Bearer tokens: known by their SHA-256 only, checked in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import weakref
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
    """Resolves a presented token to its principal without leaking timing.

    A client sends the same Authorization header with every request of a connection, so
    each open connection's last header that held a valid token is kept with its
    principal, for as long as the connection lives: its next requests are compared with
    it, in constant time, instead of hashing the token again. The constant time matters
    because one connection may carry many clients' requests (a proxy's pool).
    """

    def __init__(self, tokens: tuple[TokenConfig, ...]) -> None:
        self._entries = tuple(
            (bytes.fromhex(t.sha256), Principal(t.name, t.scopes, t.namespace)) for t in tokens
        )
        # By a weak reference to the connection, so that the entry goes with it.
        self._last_header: dict[weakref.ref[object], tuple[str, Principal]] = {}

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

    @property
    def remembered_connections(self) -> int:
        """How many open connections have a header kept."""
        return len(self._last_header)

    def remembered(self, connection: object, header: str) -> Principal | None:
        """The principal of ``header`` when ``connection`` sent it last time with a valid
        token (:meth:`remember`), else None."""
        last = self._last_header.get(weakref.ref(connection))
        # compare_digest takes str only when it is ASCII, as a token of ours is.
        if last is None or not header.isascii() or not hmac.compare_digest(last[0], header):
            return None
        return last[1]

    def remember(self, connection: object, header: str, principal: Principal) -> None:
        """``header``, whose token is ``principal``'s, is what ``connection`` sends."""
        if header.isascii():
            self._last_header[weakref.ref(connection, self._forget)] = (header, principal)

    def _forget(self, connection: weakref.ref[object]) -> None:
        self._last_header.pop(connection, None)


def parse_bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, else None."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None
