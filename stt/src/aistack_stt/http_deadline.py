"""A deadline for each request's head, which uvicorn does not have.

uvicorn's h11 protocol waits for a request's headers for ever: a connection that sends
nothing, or a byte every few seconds (slowloris), holds a descriptor and a slot for as long
as the client likes (its keep-alive timer is reset by every byte). `head_deadline_protocol`
makes a subclass that closes a connection whose request head (request line and headers)
is not complete within `seconds` of the connection opening or of the previous response.
The body has its own limit (`intake.py`, `AISTACK_STT_UPLOAD_TIMEOUT_S`); a WebSocket is
past its head once upgraded, and the live sessions' idle timeout takes over.
"""

from __future__ import annotations

import asyncio
import logging

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("aistack_stt.http")


class _HeadDeadline(H11Protocol):
    head_timeout_s = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._check()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._check()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _check(self) -> None:
        # IDLE: no complete request head yet (a new connection, or keep-alive after an
        # answer); any other state means the head has arrived (or the protocol switched).
        if self.conn.their_state is h11.IDLE:
            self._arm()
        else:
            self._disarm()

    def _arm(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.head_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _expired(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.info(
                "closing a connection from %s: no complete request head within %g s "
                "(AISTACK_STT_HEADER_TIMEOUT_S)",
                self.client[0] if self.client else "?",
                self.head_timeout_s,
            )
            self.transport.close()


def head_deadline_protocol(seconds: float) -> type[H11Protocol]:
    """uvicorn's h11 protocol, closing connections whose request head takes over `seconds`."""
    return type("HeadDeadlineProtocol", (_HeadDeadline,), {"head_timeout_s": seconds})
