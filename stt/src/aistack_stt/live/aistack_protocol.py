"""The aistack live protocol: `WS /v1/audio/stream` (documented in stt/README.md).

client → server
  text   {"type": "start", "model", "language", "mode": "continue" | "auto_end",
          "vad_threshold", "vad_silence_ms", "partial_interval_ms"}   (all optional)
  binary PCM16 little-endian, mono, 16 kHz; any frame size up to the limit
  text   {"type": "stop"}   finish the utterance in progress, send its final, close
server → client
  {"type": "session.started", "session_id", "options", "limits", "audio", "started_at"}
  {"type": "speech.started", "utterance", "start"}
  {"type": "partial", "utterance", "committed", "unstable", "text"}
  {"type": "speech.stopped", "utterance", "end"}
  {"type": "final", "utterance", "text", "start", "end", "language", "segments": [...]}
  {"type": "session.ended", "reason"}
  {"type": "error", "code", "message"}      (followed by a close where the session cannot go on)
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict

from ..errors import APIError
from .adapter import (
    CLOSE_NORMAL,
    CLOSE_POLICY,
    LiveAdapter,
    Step,
)
from .events import Event, as_message
from .options import OptionError, StreamOptions, parse_options
from .vad import SAMPLE_RATE


class AistackProtocol(LiveAdapter):
    """The session starts with the start message (or the first audio) and ends with stop."""

    reason = "stop"  # what session.ended says

    async def emit(self, event: Event) -> None:
        await self.send(as_message(event))

    async def handle(self, message: dict) -> Step:
        data, text = message.get("bytes"), message.get("text")
        if data is not None:
            return await self._audio(data)
        try:
            control = _control(text)
        except OptionError as exc:
            return await self.refuse(CLOSE_POLICY, "invalid_message", str(exc))
        kind = control.get("type")
        if kind == "start":
            if self.session is not None:
                return await self.refuse(
                    CLOSE_POLICY,
                    "invalid_message",
                    "the session has already started; send audio or stop",
                )
            try:
                options = parse_options(control, StreamOptions())
            except OptionError as exc:
                return await self.refuse(CLOSE_POLICY, "invalid_option", str(exc))
            await self._open(options)
            return Step.CONTINUE
        if kind == "stop":
            session = self.session
            if session is not None and session.options.mode == "auto_end" and session.count:
                self.reason = "utterance_complete"  # its final is pending; stop changes nothing
            return Step.STOP
        return await self.refuse(
            CLOSE_POLICY, "invalid_message", f"unknown message type {kind!r}; use start or stop"
        )

    async def _audio(self, data: bytes) -> Step:
        refused = await self.refuse_frame(
            data,
            "; send smaller frames, e.g. 100 ms (3200 bytes)",
            f"an audio frame of {len(data)} bytes is not whole 16-bit samples; "
            "send PCM16 little-endian mono at 16 kHz",
        )
        if refused is not None:
            return refused
        if self.session is None:
            await self._open(StreamOptions())
        await self.session.feed(data)
        return Step.CONTINUE

    async def _open(self, options: StreamOptions) -> None:
        self.session = self.new_session(options)
        await self.send(
            {
                "type": "session.started",
                "session_id": self.sid,
                "options": asdict(options),
                "limits": asdict(self.limits),
                "audio": {"encoding": "pcm_s16le", "sample_rate": SAMPLE_RATE, "channels": 1},
                "started_at": time.time(),
            }
        )

    async def session_ended(self) -> Step:
        self.reason = "utterance_complete"
        return Step.STOP

    async def idle_timeout(self) -> None:
        await self.close_idle(" (AISTACK_STT_STREAM_IDLE_TIMEOUT_S)")

    async def finish(self) -> None:
        await self.stop_session()
        await self.send({"type": "session.ended", "reason": self.reason})
        await self.close(CLOSE_NORMAL)

    async def failed(self, exc: APIError) -> None:
        await self.refuse_failure(exc)


def _control(text: str | None) -> dict:
    try:
        value = json.loads(text or "")
    except ValueError:
        raise OptionError("message", 'a text message must be JSON, e.g. {"type": "stop"}') from None
    if not isinstance(value, dict):
        raise OptionError("message", "a text message must be a JSON object with a type")
    return value
