"""The chatsessions bot SDK: an async client and channel adapters.

It depends on aiohttp and orjson only and imports nothing from the server, so a bot
installs it without Redis or the service's other dependencies.
"""

from __future__ import annotations

from ._client import (
    BadRequest,
    ChatSessionsClient,
    ChatSessionsError,
    Conflict,
    NotFound,
    Unauthorized,
    Unavailable,
    new_message_id,
)
from .adapters import Adapted, Mirrored, Skipped

__all__ = [
    "Adapted",
    "BadRequest",
    "ChatSessionsClient",
    "ChatSessionsError",
    "Conflict",
    "Mirrored",
    "NotFound",
    "Skipped",
    "Unauthorized",
    "Unavailable",
    "new_message_id",
]
