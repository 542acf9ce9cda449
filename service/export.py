"""Session exports, rendered a page of messages at a time so any size streams."""

from __future__ import annotations

from typing import Protocol
from urllib.parse import quote

import orjson

from .store import Message, Session


class Exporter(Protocol):
    content_type: str

    def disposition(self) -> str: ...
    def head(self) -> bytes: ...
    def messages(self, page: list[Message]) -> bytes: ...
    def tail(self) -> bytes: ...


def _disposition(session: Session, extension: str) -> str:
    # RFC 6266/5987: the id may hold any character, so the name goes percent-encoded.
    name = quote(f"session-{session.id}.{extension}", safe="")
    return f"attachment; filename*=UTF-8''{name}"


class JsonExporter:
    """``{"session": {…}, "messages": [{…}, …]}``"""

    content_type = "application/json"

    def __init__(self, session: Session) -> None:
        self._session = session
        self._written = False

    def disposition(self) -> str:
        return _disposition(self._session, "json")

    def head(self) -> bytes:
        return b'{"session":' + orjson.dumps(self._session.as_dict()) + b',"messages":['

    def messages(self, page: list[Message]) -> bytes:
        body = b",".join(orjson.dumps(message.as_dict()) for message in page)
        separator = b"," if self._written else b""
        self._written = True
        return separator + body

    def tail(self) -> bytes:
        return b"]}"


class MarkdownExporter:
    """A transcript: the session's facts, then one section per message."""

    content_type = "text/markdown"

    def __init__(self, session: Session) -> None:
        self._session = session

    def disposition(self) -> str:
        return _disposition(self._session, "md")

    def head(self) -> bytes:
        session = self._session
        lines = [
            f"# {session.title}",
            "",
            f"- Session: `{session.id}`",
            f"- Channel: {session.channel}",
            f"- Created: {session.created_at}",
            f"- Last activity: {session.updated_at}",
            f"- Messages: {session.message_count}",
            "",
        ]
        return "\n".join(lines).encode() + b"\n"

    def messages(self, page: list[Message]) -> bytes:
        sections = [f"## {m.role} · {m.timestamp}\n\n{m.content}\n\n" for m in page]
        return "".join(sections).encode()

    def tail(self) -> bytes:
        return b""


def exporter(export_format: str, session: Session) -> Exporter:
    if export_format == "md":
        return MarkdownExporter(session)
    return JsonExporter(session)
