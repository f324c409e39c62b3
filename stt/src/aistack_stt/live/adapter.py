"""The base of every live protocol adapter, and the words it shares with the receive loop.

A protocol adapter translates one wire format to and from the live session: client messages
in (`handle`), the session's typed events out (`emit`), and the protocol's way of greeting,
timing out, finishing and failing. The receive loop (loop.py) drives it; the behaviour (VAD,
partials, finals) lives once, in `LiveSession` (session.py).

`LiveAdapter` holds what every adapter has: the connection, the stream limits, the
transcriber, the session id and beam size, the session (once there is one), and `send`, which
serialises messages (partials and finals are sent from their own tasks) and drops them once the
loop has ended (`closed`), and the refusals the WebSocket protocols share (`refuse`, a bad
audio frame, an idle connection, a failed transcription). A new protocol subclasses it and
writes the six hooks below; a transport other than a WebSocket (a gRPC stream, say) overrides
`write` too. Event loop only: the lock is an asyncio lock, and nothing here blocks.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import enum

from fastapi import WebSocket, WebSocketDisconnect

from ..config import StreamLimits
from ..errors import APIError
from .events import Event
from .options import StreamOptions
from .session import LiveSession, Transcribe

# WebSocket close codes (RFC 6455 section 7.4.1).
CLOSE_NORMAL, CLOSE_POLICY, CLOSE_TOO_BIG = 1000, 1008, 1009
CLOSE_ERROR, CLOSE_TRY_LATER = 1011, 1013


class Step(enum.Enum):
    """What the loop does after an adapter's hook."""

    CONTINUE = "continue"  # read the next message
    STOP = "stop"  # the client is done: finish the session normally
    CLOSED = "closed"  # the adapter has closed the connection (a refusal)


class LiveAdapter(abc.ABC):
    """One live connection in one protocol (see the module docstring)."""

    def __init__(
        self,
        websocket: WebSocket,
        limits: StreamLimits,
        transcribe: Transcribe,
        sid: str,
        beam_size: int,
    ) -> None:
        self.websocket, self.sid = websocket, sid  # the connection, and its id in the logs
        # What every session of this connection is made with (new_session).
        self.limits, self.transcribe, self.beam_size = limits, transcribe, beam_size
        self.session: LiveSession | None = None
        self.closed = False  # set by the loop when it ends; `send` then does nothing
        self._send_lock = asyncio.Lock()  # guards the connection's writes

    async def send(self, message: dict) -> None:
        """One message to the client, whole, after any other in flight; none once closed."""
        if self.closed:
            return
        async with self._send_lock:
            try:
                await self.write(message)
            except WebSocketDisconnect:
                # The client went away mid-session (its final, say, was still being
                # decoded): nobody is left to tell, and it is no server error to log.
                self.closed = True

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Close the connection, unless it is gone already: a client that left while its
        finals were decoded makes a write fail, and closing after that is nothing to log."""
        if self.closed:
            return
        # Starlette raises a RuntimeError (WebSocketDisconnected in newer releases) for a
        # close after the transport failed.
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            await self.websocket.close(code=code, reason=reason)
        self.closed = True

    async def write(self, message: dict) -> None:
        """Put one message on the wire (called under the send lock): JSON over the WebSocket."""
        await self.websocket.send_json(message)

    def new_session(self, options: StreamOptions, use_vad: bool = True) -> LiveSession:
        """A live session whose events come back through `emit`."""
        return LiveSession(
            options, self.limits, self.transcribe, self.emit, self.beam_size, use_vad
        )

    async def refuse(self, code: int, error: str, message: str) -> Step:
        """Refuse the client: an error event, a close with `code` (`close_with_error`)."""
        await close_with_error(self.websocket, code, error, message)
        return Step.CLOSED

    async def refuse_frame(self, data: bytes, advice: str, odd: str) -> Step | None:
        """Refuse an audio frame over the limit (`advice` ends the message) or not whole
        16-bit samples (`odd` is the message); None for a frame the session can take."""
        if len(data) > self.limits.max_frame_bytes:
            return await self.refuse(
                CLOSE_TOO_BIG,
                "frame_too_large",
                f"an audio frame of {len(data)} bytes is over the limit of "
                f"{self.limits.max_frame_bytes} (AISTACK_STT_STREAM_MAX_FRAME_BYTES){advice}",
            )
        if len(data) % 2:
            return await self.refuse(CLOSE_POLICY, "invalid_audio", odd)
        return None

    async def stop_session(self) -> None:
        """Finish the session, if one started: wait for its finals; raise its failure."""
        if self.session is not None:
            await self.session.stop()
            if self.session.failure is not None:
                raise self.session.failure

    async def close_idle(self, note: str = "") -> None:
        """Close a connection idle for `idle_timeout_s`, saying so (`note` after the time)."""
        await close_with_error(
            self.websocket,
            CLOSE_NORMAL,
            "idle_timeout",
            f"no audio or message for {self.limits.idle_timeout_s:g} s{note}; "
            "the session is closed",
        )

    async def refuse_failure(self, exc: APIError) -> None:
        """Report a failed transcription and close: 1011 for a server fault, else 1008."""
        code = CLOSE_ERROR if exc.status >= 500 else CLOSE_POLICY
        await self.refuse(code, exc.code or "error", exc.message)

    async def opened(self) -> None:
        """The connection is accepted and authorised: greet the client (default: nothing)."""
        return None

    @abc.abstractmethod
    async def emit(self, event: Event) -> None:
        """One session event (speech started/stopped, partial, final) in this protocol."""

    @abc.abstractmethod
    async def handle(self, message: dict) -> Step:
        """One client message (ASGI `websocket.receive`: `bytes` or `text`)."""

    @abc.abstractmethod
    async def session_ended(self) -> Step:
        """The session ended by itself (auto_end's final was sent)."""

    @abc.abstractmethod
    async def idle_timeout(self) -> None:
        """Nothing came for `idle_timeout_s`: say so and close."""

    @abc.abstractmethod
    async def finish(self) -> None:
        """A normal end: wait for the session's finals, say goodbye, close."""

    @abc.abstractmethod
    async def failed(self, exc: APIError) -> None:
        """A transcription failed for a reason the client must hear: report and close."""


async def close_with_error(websocket: WebSocket, code: int, error: str, message: str) -> None:
    """The aistack protocol's refusal: an error event, then a close naming the reason (also
    used before any adapter runs: a wrong key, too many sessions)."""
    with contextlib.suppress(Exception):
        await websocket.send_json({"type": "error", "code": error, "message": message})
        await websocket.close(code=code, reason=error)
