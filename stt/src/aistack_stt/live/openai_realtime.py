"""OpenAI's Realtime API, transcription sessions only: `WS /v1/realtime?intent=transcription`.

The same session behind OpenAI's event names, so clients written for OpenAI's realtime
transcription can point here. What is supported (and documented in stt/README.md):

client → server
  transcription_session.update (or session.update) with `input_audio_format` "pcm16"
    (24 kHz mono, OpenAI's format), `input_audio_transcription` {model, language, prompt
    (Whisper's prompt, after the server's vocabulary)}, `turn_detection` {type "server_vad",
    threshold, silence_duration_ms} or null
    (then the client commits)
  input_audio_buffer.append {audio: base64}, input_audio_buffer.commit, input_audio_buffer.clear
server → client
  transcription_session.created / .updated, input_audio_buffer.speech_started / .speech_stopped
  / .committed / .cleared, conversation.item.input_audio_transcription.delta (the committed
  prefix as it grows) and .completed (the final transcript), error

Not supported: other audio formats (g711), noise reduction, `include` (logprobs),
semantic_vad, and everything about responses (this is speech-to-text only).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import itertools
import json
from collections.abc import Mapping

import av
import numpy as np

from ..errors import APIError
from .adapter import CLOSE_ERROR, CLOSE_POLICY, CLOSE_TOO_BIG, LiveAdapter, Step
from .events import Event, Final, Partial, SpeechStarted, SpeechStopped
from .options import OptionError, StreamOptions, parse_options

_event_ids = itertools.count(1)


def _event(kind: str, **fields) -> dict:
    return {"event_id": f"event_{next(_event_ids)}", "type": kind, **fields}


def _error(code: str, message: str, param: str | None = None) -> dict:
    return _event(
        "error",
        error={"type": "invalid_request_error", "code": code, "message": message, "param": param},
    )


class Resampler24k:
    """24 kHz PCM16 (OpenAI's realtime format) → 16 kHz PCM16, filtered by libswresample."""

    def __init__(self) -> None:
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=16000)

    def __call__(self, pcm: bytes) -> bytes:
        samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
        if not samples.size:
            return b""
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 24000
        return b"".join(f.to_ndarray().tobytes() for f in self._resampler.resample(frame))


def session_options(update: Mapping, current: StreamOptions) -> tuple[StreamOptions, bool]:
    """Map an OpenAI session object onto our options; returns them and whether VAD is on."""
    fmt = update.get("input_audio_format", "pcm16")
    if fmt != "pcm16":
        raise OptionError(
            "input_audio_format",
            f"input_audio_format {fmt!r} is not supported; send pcm16 (24 kHz mono)",
        )
    start: dict = {}
    transcription = update.get("input_audio_transcription") or {}
    if not isinstance(transcription, Mapping):
        raise OptionError(
            "input_audio_transcription", "input_audio_transcription must be an object"
        )
    if transcription.get("model"):
        start["model"] = transcription["model"]
    if transcription.get("language"):
        start["language"] = transcription["language"]
    if "prompt" in transcription:
        start["prompt"] = transcription["prompt"]
    use_vad = True
    if "turn_detection" in update and update["turn_detection"] is None:
        use_vad = False
    else:
        turn = update.get("turn_detection") or {}
        if not isinstance(turn, Mapping):
            raise OptionError("turn_detection", "turn_detection must be an object or null")
        if turn.get("type", "server_vad") != "server_vad":
            raise OptionError(
                "turn_detection.type",
                f"turn_detection type {turn.get('type')!r} is not supported; use server_vad "
                "or null",
            )
        if "threshold" in turn:
            start["vad_threshold"] = turn["threshold"]
        if "silence_duration_ms" in turn:
            start["vad_silence_ms"] = turn["silence_duration_ms"]
    merged = {**current.__dict__, **start}
    return parse_options(merged, StreamOptions()), use_vad


def _describe(options: StreamOptions, use_vad: bool, sid: str) -> dict:
    return {
        "id": sid,
        "object": "realtime.transcription_session",
        "input_audio_format": "pcm16",
        "input_audio_transcription": {
            "model": options.model,
            "language": options.language,
            "prompt": options.prompt or "",
        },
        "turn_detection": (
            {
                "type": "server_vad",
                "threshold": options.vad_threshold,
                "silence_duration_ms": options.vad_silence_ms,
                "prefix_padding_ms": 300,
            }
            if use_vad
            else None
        ),
    }


class RealtimeProtocol(LiveAdapter):
    """A session exists from the start (OpenAI's clients send audio first); an update before
    any audio replaces it."""

    def __init__(self, *args, **kwargs) -> None:  # LiveAdapter's arguments
        super().__init__(*args, **kwargs)
        self.options, self.use_vad = StreamOptions(), True
        self.session = self.new_session(self.options, self.use_vad)
        self._resample = Resampler24k()
        self._sent_delta: dict[int, str] = {}

    def _item(self, n: int) -> str:
        return f"item_{self.sid}_{n}"

    async def _speech(self, what: str, n: int, **at_ms: int) -> None:
        await self.send(_event(f"input_audio_buffer.speech_{what}", **at_ms, item_id=self._item(n)))

    async def emit(self, event: Event) -> None:
        """A session event as OpenAI's event(s)."""
        n = event.utterance
        if isinstance(event, SpeechStarted):
            await self._speech("started", audio_start_ms=int(event.start * 1000), n=n)
        elif isinstance(event, SpeechStopped):
            await self._speech("stopped", audio_end_ms=int(event.end * 1000), n=n)
        elif isinstance(event, Partial):
            before, now = self._sent_delta.get(n, ""), event.committed
            if len(now) > len(before):
                self._sent_delta[n] = now
                await self.send(
                    _event(
                        "conversation.item.input_audio_transcription.delta",
                        item_id=self._item(n),
                        content_index=0,
                        delta=now[len(before) :] if before else now,
                    )
                )
        elif isinstance(event, Final):
            await self.send(
                _event(
                    "input_audio_buffer.committed",
                    previous_item_id=self._item(n - 1) if n > 1 else None,
                    item_id=self._item(n),
                )
            )
            await self.send(
                _event(
                    "conversation.item.input_audio_transcription.completed",
                    item_id=self._item(n),
                    content_index=0,
                    transcript=event.text,
                    language=event.language,
                )
            )

    async def opened(self) -> None:
        await self.send(
            _event(
                "transcription_session.created",
                session=_describe(self.options, self.use_vad, self.sid),
            )
        )

    async def handle(self, message: dict) -> Step:
        text = message.get("text")
        if text is None:
            await self.send(
                _error(
                    "invalid_message",
                    "send JSON events; audio goes base64-encoded in input_audio_buffer.append",
                )
            )
            return Step.CONTINUE
        if len(text) > self.limits.max_frame_bytes * 4 // 3 + 1024:
            await self.send(
                _error(
                    "frame_too_large",
                    f"an event of {len(text)} bytes is over the limit "
                    "(AISTACK_STT_STREAM_MAX_FRAME_BYTES of audio, base64-encoded); send "
                    "smaller chunks, e.g. 100 ms",
                )
            )
            await self.websocket.close(code=CLOSE_TOO_BIG, reason="frame_too_large")
            return Step.CLOSED
        try:
            event = json.loads(text)
            if not isinstance(event, dict):
                raise ValueError
        except ValueError:
            await self.send(_error("invalid_message", "an event must be a JSON object"))
            return Step.CONTINUE
        kind = event.get("type")
        if kind in ("transcription_session.update", "session.update"):
            await self._update(event.get("session") or {})
        elif kind == "input_audio_buffer.append":
            await self._append(event.get("audio") or "")
        elif kind == "input_audio_buffer.commit":
            if not self.session.commit():
                await self.send(
                    _error("input_audio_buffer_commit_empty", "the audio buffer is empty")
                )
        elif kind == "input_audio_buffer.clear":
            self.session.clear()
            await self.send(_event("input_audio_buffer.cleared"))
        else:
            await self.send(
                _error(
                    "unknown_event",
                    f"event type {kind!r} is not supported by this transcription-only "
                    "server; see stt/README.md",
                )
            )
        return Step.CONTINUE

    async def _update(self, update: Mapping) -> None:
        if self.session.count:
            await self.send(_error("invalid_message", "update the session before sending audio"))
            return
        try:
            self.options, self.use_vad = session_options(update, self.options)
        except OptionError as exc:
            await self.send(_error("invalid_value", str(exc), exc.param))
            return
        self.session = self.new_session(self.options, self.use_vad)
        await self.send(
            _event(
                "transcription_session.updated",
                session=_describe(self.options, self.use_vad, self.sid),
            )
        )

    async def _append(self, audio: str) -> None:
        try:
            pcm = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            await self.send(_error("invalid_audio", "audio must be base64-encoded pcm16"))
            return
        if len(pcm) % 2:
            await self.send(_error("invalid_audio", "audio is not whole 16-bit samples (pcm16)"))
            return
        await self.session.feed(self._resample(pcm))

    async def session_ended(self) -> Step:
        return Step.CONTINUE  # only a failure ends a realtime session (no auto_end mode)

    async def idle_timeout(self) -> None:
        await self.send(
            _error(
                "idle_timeout",
                f"no audio or message for {self.limits.idle_timeout_s:g} s "
                "(AISTACK_STT_STREAM_IDLE_TIMEOUT_S); the session is closed",
            )
        )
        await self.websocket.close(code=1000, reason="idle_timeout")

    async def finish(self) -> None:
        await self.close(1000)

    async def failed(self, exc: APIError) -> None:
        with contextlib.suppress(Exception):
            await self.send(_error(exc.code or "error", exc.message, exc.param))
            await self.websocket.close(code=CLOSE_ERROR if exc.status >= 500 else CLOSE_POLICY)
