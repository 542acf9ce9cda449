"""Deadlines on a request's body and on its answer (SPEC §5), with aiohttp's public API.

aiohttp bounds how long a connection takes to send its request line and headers (its
keep-alive timer, which :func:`service.app.make_runner` sets to ``client_timeout``),
but neither the read of a body nor the write of an answer: a client that stops halfway
through its body, or never reads what it asked for, would hold its connection, its
task and whatever its answer buffered, for as long as it stays connected.

- :func:`read_body` reads the whole body within ``client_timeout``, else answers 408
  (and 400, not 500, for a body aiohttp cannot decode or a client that left).
  aiohttp then reads and drops what is left of the body for at most its lingering
  time (``client_timeout`` too, set by ``make_runner``) and closes the connection.
- :func:`send` writes an answer's bytes a piece of at most ``CHUNK_BYTES`` at a time,
  each taken by the client within ``client_timeout``; a client that takes none for
  that long is dropped (its connection aborted, its buffer freed) and
  :class:`ClientGone` is raised. aiohttp waits for the socket to drain at least every
  64 KiB written, so a slow reader costs the process about one piece and the
  transport's buffer, never the whole answer.
- :func:`stream` sends a whole answer from an async generator of chunks, the way a
  handler returns an answer too large to build in memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable
from contextlib import aclosing
from typing import TypeVar

from aiohttp import web

from .appkeys import SETTINGS
from .errors import ApiError

# The most of an answer written to a connection at once: the process holds about this
# much (and the transport's own buffer) for a client that reads slowly or not at all.
CHUNK_BYTES = 64 * 1024

T = TypeVar("T")


class ClientGone(ConnectionResetError):
    """The client took no part of the answer within ``client_timeout``: it was dropped."""


def client_timeout(request: web.Request) -> float:
    return request.app[SETTINGS].client_timeout


async def read_body(request: web.Request) -> bytes:
    """The whole body: 408 when it has not arrived within ``client_timeout``, 400 when
    its framing or encoding is broken or the client left before sending all of it (an
    answer nobody reads, but the request is logged and counted as the client's fault,
    not as a failure of ours)."""
    try:
        if request.content.is_eof():
            # The whole body is here already (a small one comes with its headers):
            # reading it cannot wait, so it needs no deadline.
            return await request.read()
        async with asyncio.timeout(client_timeout(request)):
            return await request.read()
    except TimeoutError:
        raise ApiError(
            408,
            f"The body did not arrive within {client_timeout(request):g} s; send it whole, "
            "promptly.",
            {"Connection": "close"},
        ) from None
    except web.RequestPayloadError:
        raise ApiError(
            400, "The body could not be decoded: its chunked framing or Content-Encoding is broken."
        ) from None
    except ConnectionResetError:
        raise ApiError(400, "The connection closed before the whole body arrived.") from None


def drop(request: web.Request) -> None:
    """Closes the connection at once, discarding what it still buffers for the client."""
    transport = request.transport
    if transport is not None:
        transport.abort()


async def within_deadline(request: web.Request, step: Awaitable[T]) -> T:
    """``step``, a write to the client; ClientGone when the client has gone, or took
    nothing within ``client_timeout`` and was dropped."""
    try:
        async with asyncio.timeout(client_timeout(request)):
            return await step
    except TimeoutError:
        drop(request)
        raise ClientGone("the client did not read its answer in time") from None
    except ConnectionError as error:
        drop(request)
        raise ClientGone("the client has gone") from error


async def send(request: web.Request, response: web.StreamResponse, data: bytes) -> None:
    """Writes ``data`` to the prepared ``response``, each piece within the deadline;
    ClientGone (a ConnectionResetError) when the client has gone or was dropped."""
    view = memoryview(data)
    for start in range(0, len(view), CHUNK_BYTES):
        await within_deadline(request, response.write(view[start : start + CHUNK_BYTES]))


async def stream(
    request: web.Request, response: web.StreamResponse, chunks: AsyncGenerator[bytes, None]
) -> web.StreamResponse:
    """Sends ``response`` with ``chunks`` as its body, every write within the deadline.

    The headers leave with the first chunk, so an error ``chunks`` raises before its
    first chunk is answered as any error is. One it raises later cuts the connection,
    so that the client sees the answer incomplete (a chunked body without its last
    chunk), and is raised. A client that is gone, or dropped for not reading, ends the
    answer quietly: the response is returned, and aiohttp finds its connection closed.
    """
    async with aclosing(chunks):
        try:
            async for chunk in chunks:
                if not response.prepared:
                    await within_deadline(request, response.prepare(request))
                await send(request, response, chunk)
            if not response.prepared:
                await within_deadline(request, response.prepare(request))
            await within_deadline(request, response.write_eof())
        except ClientGone:
            pass
        except Exception:
            if response.prepared:
                drop(request)
            raise
    return response
