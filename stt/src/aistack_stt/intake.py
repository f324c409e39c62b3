"""What one upload may cost before it reaches the queue: bytes, time, and a decoder.

Limits hold while the body is read, not after:
- `limited_receive` wraps the ASGI `receive` of a request: it counts the body's bytes as they
  arrive (413 past the limit whatever Content-Length said, or with none at all, as in a
  chunked upload) and ends a body that takes longer than `upload_timeout_s` to arrive (408;
  the server then closes the connection, so a client trickling a byte every few seconds
  cannot hold it). Starlette's form parser spools a file to disk past 1 MiB; behind this
  wrapper it never writes more than the limit.
- `DecodeSlots` bounds the uploads decoded at once. Decoding comes before admission to the
  scheduler's queue (the queue needs the audio's length), so without it any number of
  uploads could unpack at the same time, each up to `max_audio_s` of samples.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from .errors import APIError, QueueFull

Receive = Callable[[], Awaitable[dict]]

# The multipart envelope around the file (boundaries, the other fields) gets this much room.
ENVELOPE_BYTES = 64 * 1024


def _file_error(status: int, message: str, code: str) -> APIError:
    return APIError(status, message, param="file", code=code)


def upload_timeout(seconds: float) -> APIError:
    return _file_error(
        408,
        f"the request body did not arrive within {seconds:g} s (AISTACK_STT_UPLOAD_TIMEOUT_S); "
        "the connection is closed",
        "upload_timeout",
    )


def too_large(max_upload_mb: float) -> APIError:
    return _file_error(
        413,
        f"the upload is larger than the limit of {max_upload_mb:g} MB (AISTACK_STT_MAX_UPLOAD_MB)",
        "file_too_large",
    )


def limited_receive(
    receive: Receive, max_bytes: int, timeout_s: float, too_large: Callable[[], APIError]
) -> Receive:
    """`receive`, refusing a body over `max_bytes` or slower than `timeout_s` in all."""
    deadline = time.monotonic() + timeout_s
    received = 0

    async def limited() -> dict:
        nonlocal received
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise upload_timeout(timeout_s)
        try:
            message = await asyncio.wait_for(receive(), remaining)
        except TimeoutError:
            raise upload_timeout(timeout_s) from None
        if message.get("type") == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise too_large()
        return message

    return limited


class DecodeSlots:
    """At most `limit` uploads decoded at once, at most `max_waiting` waiting for a turn.

    Used from the event loop only (no lock): the counts change between awaits.
    """

    def __init__(self, limit: int, max_waiting: int) -> None:
        self.limit = limit
        self.max_waiting = max_waiting
        self.waiting = 0
        self.running = 0
        self._free = asyncio.Semaphore(limit)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._free.locked() and self.waiting >= self.max_waiting:
            raise QueueFull(retry_after=5, limit=self.max_waiting)
        self.waiting += 1
        try:
            await self._free.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._free.release()
