"""two_stt's realtime protocol: `WS /ws`, so its clients work against aistack-stt unchanged.

client → server
  binary PCM16 little-endian, mono, 16 kHz, frames of 20-60 ms (any size up to the limit)
  text   {"event": "start", "language": "auto" | code}        (optional: audio starts it too)
  text   {"event": "set", "interimRate": N}   interims per second, 0.1-5 (default 2)
  text   {"event": "stop"}                   finish the utterance in progress, its final, close
server → client
  {"type": "interim", "conn", "text", "stable_chars", "t0", "t1"}
  {"type": "final", "conn", "text", "segments": [{"start", "end", "text"}], "language", "t0", "t1"}
  {"type": "status", "backpressure": "normal" | "high" | "critical", "cooldown_ms", "tail_s",
   "interim_paused"}      whenever the server's backpressure level changes
  {"type": "error", "code", "message"}     before a close, where the session cannot go on

Interims come from the interim model when the server has one (`--interim-model`), finals from
the session's model; `stable_chars` counts the characters of `text` that will not change (the
committed prefix). A thin adapter over the live session, like the other protocols.
"""

from __future__ import annotations

import json
from dataclasses import replace

from ..errors import APIError
from .adapter import (
    CLOSE_NORMAL,
    CLOSE_POLICY,
    LiveAdapter,
    Step,
)
from .events import Event, Final, Partial, SpeechStarted
from .options import OptionError, StreamOptions, parse_options
from .vad import SAMPLE_RATE

DEFAULT_RATE = 2.0  # interims per second
COOLDOWN_MS = {"normal": 0, "high": 500, "critical": 2000}


class TwoSttProtocol(LiveAdapter):
    """Interims and finals as two_stt sends them, and a `status` at each backpressure change."""

    interval_ms = int(1000 / DEFAULT_RATE)
    level = "normal"

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self._starts: dict[int, float] = {}
        engine = getattr(self.websocket.app.state, "engine", None)
        self._backpressure = getattr(engine, "backpressure", lambda: "normal")

    async def emit(self, event: Event) -> None:
        if isinstance(event, SpeechStarted):
            self._starts[event.utterance] = event.start
        elif isinstance(event, Partial):
            await self.send(
                {
                    "type": "interim",
                    "conn": self.sid,
                    "text": event.text,
                    "stable_chars": len(event.committed),  # `text` starts with it
                    "t0": self._starts.get(event.utterance, 0.0),
                    "t1": event.end,
                }
            )
        elif isinstance(event, Final):
            await self.send(
                {
                    "type": "final",
                    "conn": self.sid,
                    "text": event.text,
                    "segments": [
                        {"start": s.start, "end": s.end, "text": s.text} for s in event.segments
                    ],
                    "language": event.language,
                    "t0": event.start,
                    "t1": event.end,
                }
            )
        await self._status()

    async def _status(self) -> None:
        """Tell the client when the server's backpressure level changes."""
        level = self._backpressure()
        if level == self.level:
            return
        self.level = level
        utt = self.session.current if self.session is not None else None
        tail = (self.session.received - utt.last_partial_at) / SAMPLE_RATE if utt else 0.0
        await self.send(
            {
                "type": "status",
                "backpressure": level,
                "cooldown_ms": COOLDOWN_MS[level],
                "tail_s": round(max(0.0, tail), 3),
                "interim_paused": level == "critical",
            }
        )

    async def handle(self, message: dict) -> Step:
        data, text = message.get("bytes"), message.get("text")
        if data is not None:
            return await self._audio(data)
        try:
            control = json.loads(text or "")
        except ValueError:
            control = None
        if not isinstance(control, dict):
            return await self.refuse(
                CLOSE_POLICY, "invalid_message", 'a text message must be JSON: {"event": ...}'
            )
        event = control.get("event")
        if event == "start":
            if self.session is not None:
                return await self.refuse(
                    CLOSE_POLICY, "invalid_message", "the session has already started"
                )
            language = control.get("language") or "auto"
            try:
                options = parse_options(
                    {"language": None if language == "auto" else language},
                    StreamOptions(partial_interval_ms=self.interval_ms),
                )
            except OptionError as exc:
                return await self.refuse(CLOSE_POLICY, "invalid_option", str(exc))
            self._open(options)
            return Step.CONTINUE
        if event == "set":
            rate = control.get("interimRate")
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0.1 <= rate <= 5:
                return await self.refuse(
                    CLOSE_POLICY,
                    "invalid_option",
                    f"interimRate {rate!r} must be interims per second, 0.1-5",
                )
            self.interval_ms = max(200, int(1000 / rate))
            if self.session is not None:
                self.session.options = replace(
                    self.session.options, partial_interval_ms=self.interval_ms
                )
            return Step.CONTINUE
        if event == "stop":
            return Step.STOP
        return await self.refuse(
            CLOSE_POLICY, "invalid_message", f"unknown event {event!r}; use start, set or stop"
        )

    async def _audio(self, data: bytes) -> Step:
        refused = await self.refuse_frame(data, "", "audio frames must be whole PCM16 samples")
        if refused is not None:
            return refused
        if self.session is None:
            self._open(StreamOptions(partial_interval_ms=self.interval_ms))
        await self.session.feed(data)
        await self._status()
        return Step.CONTINUE

    def _open(self, options: StreamOptions) -> None:
        self.session = self.new_session(options)

    async def session_ended(self) -> Step:
        return Step.STOP

    async def idle_timeout(self) -> None:
        await self.close_idle()

    async def finish(self) -> None:
        await self.stop_session()
        await self.close(CLOSE_NORMAL)

    async def failed(self, exc: APIError) -> None:
        await self.refuse_failure(exc)
