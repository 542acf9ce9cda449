"""Session exports, rendered a page of messages at a time so any size streams."""

from __future__ import annotations

import re
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


# What a plain ``filename=`` may carry: every file system and every client takes these.
_UNSAFE_IN_FILENAME = re.compile(r"[^A-Za-z0-9_.-]")
# File systems refuse names over 255 bytes; an id may be 256 characters.
_PLAIN_ID_LENGTH = 200


def _disposition(session: Session, extension: str) -> str:
    # RFC 6266/5987: the id may hold any character, so the exact name goes percent-encoded
    # in filename*; clients that read only filename= (curl -OJ) get an ASCII stand-in with
    # the same extension, so that the two formats of one session never share a name.
    exact = quote(f"session-{session.id}.{extension}", safe="")
    safe_id = _UNSAFE_IN_FILENAME.sub("_", session.id[:_PLAIN_ID_LENGTH])
    plain = f"session-{safe_id}.{extension}"
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{exact}"


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
