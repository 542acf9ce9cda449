"""Channel adapters: a platform's native event becomes a session id, a channel and a message.

Each adapter is a pure function of the event, so it can be tested with the
platforms' documented payloads and used from any bot framework.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Mirrored:
    """One message of ``session_id``, as POST /api/sessions/{session_id}/messages takes it."""

    session_id: str
    channel: str
    role: str
    content: str
    message_id: str
    timestamp: float | str
    metadata: dict[str, Any] = field(default_factory=dict)

    def as_batch_item(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "channel": self.channel,
            "role": self.role,
            "content": self.content,
            "id": self.message_id,
            "timestamp": self.timestamp,
            "metadata": self.metadata,
        }


@dataclass(frozen=True, slots=True)
class Skipped:
    """An event that holds no message to mirror, and why."""

    reason: str


Adapted = Mirrored | Skipped
