"""An async client for bots and tools: retries that never double-count a message.

Every write carries an id chosen here before the first attempt (the message id,
the id of a new session), so a request retried after a timeout, a 503 or a
dropped connection is recognised by the service as the same write.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from types import TracebackType
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

from .adapters import Mirrored

RETRY_STATUSES = {429, 503}


class ChatSessionsError(Exception):
    """The service refused a request; ``detail`` is its sentence."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail


class BadRequest(ChatSessionsError):
    """400, 413, 415 or 422: the request itself must change."""


class Unauthorized(ChatSessionsError):
    """401 or 403: the token is wrong or lacks a scope."""


class NotFound(ChatSessionsError):
    pass


class Conflict(ChatSessionsError):
    pass


class Unavailable(ChatSessionsError):
    """Still 503/429 or unreachable after every retry; status 0 means no answer at all."""


ERRORS: dict[int, type[ChatSessionsError]] = {
    400: BadRequest,
    413: BadRequest,
    415: BadRequest,
    422: BadRequest,
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
}


def new_message_id() -> str:
    return f"msg_{uuid.uuid4().hex}"


def session_path(session_id: str) -> str:
    return "/api/sessions/" + quote(session_id, safe="")


class ChatSessionsClient:
    """``async with ChatSessionsClient(url, token) as client: await client.add_message(...)``"""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        retries: int = 5,
        backoff: float = 0.2,
        max_backoff: float = 10.0,
        timeout: float = 10.0,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session = session
        self._owns_session = session is None
        # How many attempts were retried: for logs and tests.
        self.retried = 0

    async def __aenter__(self) -> ChatSessionsClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None and self._owns_session:
            await self._session.close()
        self._session = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                json_serialize=lambda value: orjson.dumps(value).decode()
            )
            self._owns_session = True
        return self._session

    def _pause(self, attempt: int, retry_after: str | None) -> float:
        exponential = min(self.max_backoff, self.backoff * 2**attempt)
        pause = random.uniform(exponential / 2, exponential)
        if retry_after is not None:
            with contextlib.suppress(ValueError):
                pause = max(pause, min(self.max_backoff, float(retry_after)))
        return pause

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """Send, retrying transient failures with backoff that honours Retry-After."""
        last_status, last_detail = 0, "the service did not answer"
        for attempt in range(self.retries + 1):
            retry_after = None
            try:
                async with self._client().request(
                    method,
                    self.base_url + path,
                    json=json,
                    params=params,
                    headers=self._headers,
                    timeout=self._timeout,
                ) as response:
                    body = await response.read()
                    if response.status not in RETRY_STATUSES:
                        if response.status >= 400:
                            raise error_for(response.status, body)
                        return response.status, body
                    last_status, last_detail = response.status, detail_of(body)
                    retry_after = response.headers.get("Retry-After")
            except (aiohttp.ClientConnectionError, TimeoutError) as error:
                last_status, last_detail = 0, f"no answer: {error!r}"
            if attempt < self.retries:
                self.retried += 1
                await asyncio.sleep(self._pause(attempt, retry_after))
        raise Unavailable(last_status, last_detail)

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        _, body = await self._request(method, path, **kwargs)
        return orjson.loads(body)

    # --- sessions ---------------------------------------------------------------------

    async def page(
        self,
        *,
        limit: int = 50,
        cursor: str | None = None,
        offset: int | None = None,
        channel: str | None = None,
        active: bool | None = None,
    ) -> dict[str, Any]:
        params = {"limit": str(limit)}
        if cursor is not None:
            params["cursor"] = cursor
        if offset is not None:
            params["offset"] = str(offset)
        if channel is not None:
            params["channel"] = channel
        if active is not None:
            params["active"] = "true" if active else "false"
        result: dict[str, Any] = await self._json("GET", "/api/sessions", params=params)
        return result

    async def list_sessions(
        self, *, page_size: int = 100, channel: str | None = None, active: bool | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """Every session, most recent first, following ``next_cursor`` page by page."""
        cursor = None
        while True:
            page = await self.page(limit=page_size, cursor=cursor, channel=channel, active=active)
            for session in page["sessions"]:
                yield session
            cursor = page["next_cursor"]
            if cursor is None:
                return

    async def get_session(self, session_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json("GET", session_path(session_id))
        return result

    async def create_session(
        self,
        channel: str,
        *,
        session_id: str | None = None,
        title: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Creates a session; the id is chosen here so that a retry cannot make two."""
        body: dict[str, Any] = {
            "id": session_id or f"session_{uuid.uuid4().hex[:16]}",
            "channel": channel,
        }
        if title is not None:
            body["title"] = title
        if metadata is not None:
            body["metadata"] = dict(metadata)
        try:
            result: dict[str, Any] = await self._json("POST", "/api/sessions", json=body)
        except Conflict:
            if session_id is not None:
                raise
            # Our own earlier attempt got through before its answer was lost.
            return await self.get_session(body["id"])
        return result

    async def rename(self, session_id: str, title: str) -> dict[str, Any]:
        result: dict[str, Any] = await self._json(
            "PATCH", session_path(session_id), json={"title": title}
        )
        return result

    async def delete(self, session_id: str) -> None:
        await self._request("DELETE", session_path(session_id))

    # --- messages ---------------------------------------------------------------------

    async def add_message(
        self,
        session_id: str,
        *,
        role: str,
        content: str,
        channel: str | None = None,
        message_id: str | None = None,
        timestamp: str | float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Stores one message; answers ``{"message", "session", "created"}``."""
        body = message_body(role, content, channel, message_id, timestamp, metadata)
        status, raw = await self._request("POST", session_path(session_id) + "/messages", json=body)
        result: dict[str, Any] = orjson.loads(raw)
        result["created"] = status == 201
        return result

    async def mirror(self, adapted: Mirrored) -> dict[str, Any]:
        """Stores what a channel adapter made of a platform event."""
        return await self.add_message(
            adapted.session_id,
            role=adapted.role,
            content=adapted.content,
            channel=adapted.channel,
            message_id=adapted.message_id,
            timestamp=adapted.timestamp,
            metadata=adapted.metadata,
        )

    async def add_messages(self, messages: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """A batch (up to 1000); each message gets an id here when it has none."""
        items = [{**m, "id": m.get("id") or new_message_id()} for m in messages]
        result: dict[str, Any] = await self._json("POST", "/api/messages", json={"messages": items})
        return result

    async def history(
        self, session_id: str, *, limit: int = 50, before: str | None = None
    ) -> dict[str, Any]:
        params = {"limit": str(limit)}
        if before is not None:
            params["before"] = before
        result: dict[str, Any] = await self._json(
            "GET", session_path(session_id) + "/messages", params=params
        )
        return result

    async def search(self, query: str, *, limit: int = 20) -> list[dict[str, Any]]:
        result = await self._json(
            "GET", "/api/sessions/search", params={"q": query, "limit": str(limit)}
        )
        sessions: list[dict[str, Any]] = result["sessions"]
        return sessions

    async def export(self, session_id: str, *, export_format: str = "json") -> bytes:
        _, body = await self._request(
            "GET", session_path(session_id) + "/export", params={"format": export_format}
        )
        return body


def message_body(
    role: str,
    content: str,
    channel: str | None,
    message_id: str | None,
    timestamp: str | float | None,
    metadata: Mapping[str, Any] | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"role": role, "content": content, "id": message_id or new_message_id()}
    if channel is not None:
        body["channel"] = channel
    if timestamp is not None:
        body["timestamp"] = timestamp
    if metadata is not None:
        body["metadata"] = dict(metadata)
    return body


def detail_of(body: bytes) -> str:
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return body[:200].decode("utf-8", "replace")
    if isinstance(parsed, dict) and isinstance(parsed.get("detail"), str):
        return str(parsed["detail"])
    return str(parsed)[:200]


def error_for(status: int, body: bytes) -> ChatSessionsError:
    return ERRORS.get(status, ChatSessionsError)(status, detail_of(body))
