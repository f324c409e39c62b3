"""Live transcription over a WebSocket: `WS /v1/audio/stream`.

Protocol (documented for users in stt/README.md, "Streaming and scheduling"):

client → server
  text   {"type": "start", "model", "language", "mode": "continue" | "auto_end",
          "vad_threshold", "vad_silence_ms", "partial_interval_ms"}   (all optional)
  binary PCM16 little-endian, mono, 16 kHz; any frame size up to the limit
  text   {"type": "stop"}   finish the utterance in progress, send its final, close
server → client
  {"type": "session.started", "session_id", "options", "limits"}
  {"type": "speech.started", "utterance", "start"}
  {"type": "partial", "utterance", "committed", "unstable", "text"}
  {"type": "speech.stopped", "utterance", "end"}
  {"type": "final", "utterance", "text", "start", "end", "language", "segments": [...]}
  {"type": "session.ended", "reason"}
  {"type": "error", "code", "message"}      (followed by a close where the session cannot go on)

Utterances are delimited by Silero VAD (vad.py). While one is spoken, its audio so far is
transcribed every `partial_interval_ms`; the words two consecutive hypotheses agree on become
the committed prefix, which only grows; the rest is the unstable tail. When VAD hears
`vad_silence_ms` of silence the utterance is transcribed once more, in full, as its final.
Transcriptions go through the app's engine (the scheduler's hot lane), so many sessions
share batches with each other and with short HTTP requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import itertools
import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass

import numpy as np
from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from .config import ConfigError
from .engine import TranscriptionRequest, TranscriptionResult
from .errors import APIError
from .vad import SAMPLE_RATE, StreamingVad

log = logging.getLogger("aistack_stt.streaming")

MODES = ("continue", "auto_end")
SPEECH_PAD_S = 0.3  # audio kept before VAD's start and after its end, as get_speech_timestamps
# WebSocket close codes (RFC 6455 section 7.4.1).
CLOSE_NORMAL, CLOSE_POLICY, CLOSE_TOO_BIG = 1000, 1008, 1009
CLOSE_ERROR, CLOSE_TRY_LATER = 1011, 1013


@dataclass(frozen=True)
class StreamLimits:
    """Server-side limits; each is an AISTACK_STT_STREAM_* variable (see `from_env`)."""

    max_sessions: int = 16
    max_frame_bytes: int = 256 * 1024  # 8 s of audio in one frame
    idle_timeout_s: float = 30.0  # no message for this long ends the session
    max_utterance_s: float = 30.0  # an utterance longer than this is finalised and split

    def __post_init__(self) -> None:
        for name in ("max_sessions", "max_frame_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"stream {name} {getattr(self, name)} is invalid; use 1 or more")
        if self.idle_timeout_s <= 0:
            raise ConfigError(f"stream idle_timeout_s {self.idle_timeout_s} must be > 0")
        if not 1 <= self.max_utterance_s <= 30:
            raise ConfigError(
                f"stream max_utterance_s {self.max_utterance_s} is invalid; use 1-30 seconds"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StreamLimits:
        environ = os.environ if environ is None else environ
        kinds = {
            "max_sessions": int,
            "max_frame_bytes": int,
            "idle_timeout_s": float,
            "max_utterance_s": float,
        }
        values: dict[str, object] = {}
        for name, kind in kinds.items():
            env = "AISTACK_STT_STREAM_" + name.upper()
            raw = environ.get(env, "")
            if raw:
                try:
                    values[name] = kind(raw.strip())
                except ValueError:
                    raise ConfigError(f"{env}={raw!r} is not a number") from None
        return cls(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class StreamOptions:
    model: str = "whisper-1"
    language: str | None = None
    mode: str = "continue"
    vad_threshold: float = 0.5
    vad_silence_ms: int = 500
    partial_interval_ms: int = 1000


class OptionError(ValueError):
    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def parse_options(message: Mapping, defaults: StreamOptions) -> StreamOptions:
    """Check a start message; every mistake names the field and what it accepts."""
    known = {"type", *StreamOptions.__dataclass_fields__}
    unknown = sorted(set(message) - known)
    if unknown:
        raise OptionError(
            unknown[0],
            f"unknown option {unknown[0]!r}; the start message accepts "
            f"{', '.join(sorted(known - {'type'}))}",
        )
    values = asdict(defaults)
    for key in known - {"type"}:
        if key in message and message[key] is not None:
            values[key] = message[key]
    model, language, mode = values["model"], values["language"], values["mode"]
    if not isinstance(model, str) or not model.strip():
        raise OptionError("model", "model must be a non-empty string, e.g. whisper-1")
    if language is not None and (not isinstance(language, str) or not language.isalpha()):
        raise OptionError("language", f"language {language!r} must be a code such as en or de")
    if mode not in MODES:
        raise OptionError("mode", f"mode {mode!r} is not one of {', '.join(MODES)}")
    threshold = values["vad_threshold"]
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not (0 < threshold < 1)
    ):
        raise OptionError(
            "vad_threshold", f"vad_threshold {threshold!r} must be a number between 0 and 1"
        )
    for key, low, high in (("vad_silence_ms", 100, 5000), ("partial_interval_ms", 200, 10000)):
        v = values[key]
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise OptionError(key, f"{key} {v!r} must be a whole number from {low} to {high}")
    return StreamOptions(
        model=model.strip(),
        language=language.lower() if language else None,
        mode=mode,
        vad_threshold=float(threshold),
        vad_silence_ms=values["vad_silence_ms"],
        partial_interval_ms=values["partial_interval_ms"],
    )


_WORD = re.compile(r"[\w']+")


def _norm(word: str) -> str:
    return "".join(_WORD.findall(word.lower()))


class PrefixAgreement:
    """Committed prefix and unstable tail from successive hypotheses (local agreement).

    A word is committed once two hypotheses in a row agree on it and on every word before
    it. Committed words are never taken back: a later hypothesis that contradicts them only
    changes the tail.
    """

    def __init__(self) -> None:
        self.committed: list[str] = []
        self._previous: list[str] = []

    def update(self, text: str) -> tuple[str, str]:
        words = text.split()
        n = len(self.committed)
        matches_committed = [_norm(w) for w in words[:n]] == [_norm(w) for w in self.committed]
        if matches_committed:
            agree = n
            limit = min(len(words), len(self._previous))
            while agree < limit and _norm(words[agree]) == _norm(self._previous[agree]):
                agree += 1
            self.committed.extend(words[n:agree])
        self._previous = words
        tail = words[len(self.committed) :] if matches_committed else words[n:]
        return " ".join(self.committed), " ".join(tail)


Transcribe = Callable[[TranscriptionRequest], Awaitable[TranscriptionResult]]


@dataclass
class _Utterance:
    index: int
    start_sample: int  # first sample kept (VAD start minus padding)
    agreement: PrefixAgreement
    last_partial_at: int  # samples received when the last partial was started
    partial_task: asyncio.Task | None = None
    finished: bool = False  # no more audio: the final is being transcribed
    final_sent: bool = False


class StreamSession:
    """One WebSocket session: VAD, partials, finals. Transport-neutral apart from `send`."""

    def __init__(
        self,
        options: StreamOptions,
        limits: StreamLimits,
        transcribe: Transcribe,
        send: Callable[[dict], Awaitable[None]],
        beam_size: int = 5,
        use_vad: bool = True,
    ) -> None:
        self.use_vad = use_vad  # False: the client says where utterances end (commit)
        self.options = options
        self.limits = limits
        self.transcribe = transcribe
        self.send = send
        self.beam_size = beam_size
        self.vad = StreamingVad(options.vad_threshold, options.vad_silence_ms)
        self.audio = np.zeros(0, dtype=np.float32)  # the whole session, kept for utterances
        self.base = 0  # session sample index of self.audio[0] (old audio is dropped)
        self.received = 0
        self.current: _Utterance | None = None
        self.count = 0
        self.finals: list[asyncio.Task] = []
        self.ended = asyncio.Event()  # set after auto_end's final, or when a task failed
        self.failure: APIError | None = None
        self.language: str | None = options.language

    # -- audio in ---------------------------------------------------------------------------

    async def feed(self, pcm: bytes) -> None:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        self.audio = np.concatenate([self.audio, samples])
        self.received += samples.shape[0]
        if not self.use_vad and self.current is None:
            await self._start(self.received - samples.shape[0], pad=False)
        for event in self.vad.feed(samples) if self.use_vad else ():
            if event.kind == "start" and self.current is None:
                if self.options.mode == "auto_end" and self.count:
                    continue  # auto_end: one utterance per session, later speech is ignored
                await self._start(event.sample)
            elif event.kind == "end" and self.current is not None:
                pad = int(SPEECH_PAD_S * SAMPLE_RATE)
                end = min(event.sample + pad, self.received)
                self._finish(end)
                await self.send(
                    {"type": "speech.stopped", "utterance": self.count, "end": end / SAMPLE_RATE}
                )
        utt = self.current
        if utt is None:
            self._trim(self.received - int(SPEECH_PAD_S * SAMPLE_RATE))
            return
        if self.received - utt.start_sample >= self.limits.max_utterance_s * SAMPLE_RATE:
            self._finish(self.received)  # too long for one Whisper window: cut here
            await self._start(self.received)
            return
        interval = self.options.partial_interval_ms * SAMPLE_RATE // 1000
        idle = utt.partial_task is None or utt.partial_task.done()
        if idle and self.received - utt.last_partial_at >= interval:
            utt.last_partial_at = self.received
            utt.partial_task = asyncio.create_task(self._guard(self._partial(utt, self.received)))

    def busy(self) -> bool:
        """A final is still being transcribed: the client is waiting on us, not idle."""
        return any(not task.done() for task in self.finals)

    def commit(self) -> bool:
        """The client ends the utterance now (push-to-talk); False when there was none."""
        if self.current is None:
            return False
        self._finish(self.received)
        return True

    def clear(self) -> None:
        """Forget the utterance in progress without transcribing it."""
        if self.current is not None and self.current.partial_task is not None:
            self.current.partial_task.cancel()
        self.current = None
        self._trim(self.received)

    async def stop(self) -> None:
        """End of input: finish the utterance in progress and wait for every final."""
        if self.current is not None:
            self._finish(self.received)
        if self.finals:
            await asyncio.gather(*self.finals, return_exceptions=True)

    async def close(self) -> None:
        for task in self.finals:
            task.cancel()
        if self.current is not None and self.current.partial_task is not None:
            self.current.partial_task.cancel()

    async def _guard(self, work: Awaitable[None]) -> None:
        """A failed transcription (bad model, wrong language) ends the session with its reason."""
        try:
            await work
        except APIError as exc:
            if self.failure is None:
                self.failure = exc
            self.ended.set()
        except Exception as exc:
            log.exception("stream transcription failed")
            if self.failure is None:
                self.failure = APIError(
                    500, f"transcription failed: {type(exc).__name__}: {exc}", type="server_error"
                )
            self.ended.set()

    # -- utterances -------------------------------------------------------------------------

    async def _start(self, sample: int, pad: bool = True) -> None:
        self.count += 1
        start = max(self.base, sample - (int(SPEECH_PAD_S * SAMPLE_RATE) if pad else 0))
        self.current = _Utterance(self.count, start, PrefixAgreement(), last_partial_at=sample)
        if self.use_vad:  # without VAD the client decides; there is no speech event to report
            await self.send(
                {"type": "speech.started", "utterance": self.count, "start": start / SAMPLE_RATE}
            )

    def _finish(self, end_sample: int) -> None:
        utt = self.current
        assert utt is not None
        self.current = None
        utt.finished = True
        audio = self._slice(utt.start_sample, end_sample)
        previous = self.finals[-1] if self.finals else None
        self.finals.append(
            asyncio.create_task(self._guard(self._final(utt, audio, end_sample, previous)))
        )

    def _slice(self, start: int, end: int) -> np.ndarray:
        return self.audio[start - self.base : end - self.base].copy()

    def _trim(self, keep_from: int) -> None:
        """Drop audio no utterance can need any more (the session may last hours)."""
        if keep_from > self.base:
            self.audio = self.audio[keep_from - self.base :]
            self.base = keep_from

    def _request(self, audio: np.ndarray) -> TranscriptionRequest:
        return TranscriptionRequest(
            audio=audio,
            model=self.options.model,
            language=self.language,
            beam_size=self.beam_size,
        )

    async def _partial(self, utt: _Utterance, upto: int) -> None:
        try:
            result = await self.transcribe(self._request(self._slice(utt.start_sample, upto)))
        except APIError as exc:
            if exc.status == 503:
                return  # busy: skip this partial, the final will still come
            raise
        if utt.final_sent:
            return  # a partial after the final would only confuse
        committed, unstable = utt.agreement.update(result.text)
        text = f"{committed} {unstable}".strip()
        await self.send(
            {
                "type": "partial",
                "utterance": utt.index,
                "committed": committed,
                "unstable": unstable,
                "text": text,
            }
        )

    async def _final(
        self, utt: _Utterance, audio: np.ndarray, end: int, previous: asyncio.Task | None
    ) -> None:
        offset = utt.start_sample / SAMPLE_RATE
        result = None
        while result is None:
            try:
                result = await self.transcribe(self._request(audio))
            except APIError as exc:
                if exc.status != 503:
                    raise
                await asyncio.sleep(min(2.0, float(getattr(exc, "retry_after", 1))))
        # Finals go out in utterance order, and after the utterance's last partial.
        for before in (previous, utt.partial_task):
            if before is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await before
        if self.options.language is None and self.language is None:
            self.language = result.language  # keep the session's language stable
        utt.final_sent = True
        await self.send(
            {
                "type": "final",
                "utterance": utt.index,
                "text": result.text,
                "start": round(offset, 3),
                "end": round(end / SAMPLE_RATE, 3),
                "language": result.language,
                "segments": [
                    {
                        "start": round(offset + s.start, 3),
                        "end": round(offset + s.end, 3),
                        "text": s.text.strip(),
                    }
                    for s in result.segments
                ],
            }
        )
        if self.options.mode == "auto_end":
            self.ended.set()


class SessionCounter:
    """Sessions open now, across both WebSocket endpoints."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    @contextlib.contextmanager
    def claim(self):
        if self.active >= self.limit:
            raise OverflowError
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


def authorized(websocket: WebSocket) -> bool:
    """Same key as the HTTP API, from the Authorization header or `?api_key=` (browsers)."""
    settings = getattr(websocket.app.state, "settings", None)
    key = getattr(settings, "api_key", None)
    if not key:
        return True
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode()):
        return True
    offered = [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    for proto in offered:  # how OpenAI's browser clients pass the key
        if proto.startswith("openai-insecure-api-key."):
            given = proto.removeprefix("openai-insecure-api-key.")
            if hmac.compare_digest(given.encode(), key.encode()):
                return True
    query = websocket.query_params.get("api_key", "")
    return bool(query) and hmac.compare_digest(query.encode(), key.encode())


EngineProvider = Callable[[WebSocket], Transcribe]


def default_transcriber(websocket: WebSocket) -> Transcribe:
    return websocket.app.state.engine.transcribe


def create_streaming_router(
    limits: StreamLimits | None = None, transcriber: EngineProvider = default_transcriber
) -> APIRouter:
    limits = limits or StreamLimits()
    router = APIRouter()
    sessions = SessionCounter(limits.max_sessions)
    ids = itertools.count(1)
    router.sessions = sessions  # type: ignore[attr-defined]  # for /health

    @router.websocket("/v1/audio/stream")
    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        if not authorized(websocket):
            await _refuse(
                websocket,
                CLOSE_POLICY,
                "invalid_api_key",
                "missing or wrong API key: send Authorization: Bearer <key> or ?api_key=<key>",
            )
            return
        try:
            with sessions.claim():
                await _serve(websocket, limits, transcriber(websocket), f"s{next(ids)}")
        except OverflowError:
            await _refuse(
                websocket,
                CLOSE_TRY_LATER,
                "too_many_sessions",
                f"the server already has {limits.max_sessions} live sessions "
                "(AISTACK_STT_STREAM_MAX_SESSIONS); try again later",
            )

    @router.websocket("/v1/realtime")
    async def realtime(websocket: WebSocket) -> None:
        from .realtime import serve_realtime

        offered = websocket.headers.get("sec-websocket-protocol", "")
        await websocket.accept(
            subprotocol="realtime" if "realtime" in offered.split(", ") else None
        )
        if not authorized(websocket):
            await _refuse(
                websocket,
                CLOSE_POLICY,
                "invalid_api_key",
                "missing or wrong API key: send Authorization: Bearer <key>",
            )
            return
        settings = getattr(websocket.app.state, "settings", None)
        try:
            with sessions.claim():
                await serve_realtime(
                    websocket,
                    limits,
                    transcriber(websocket),
                    f"sess_{next(ids)}",
                    getattr(settings, "beam_size", 5),
                )
        except OverflowError:
            await _refuse(
                websocket,
                CLOSE_TRY_LATER,
                "too_many_sessions",
                f"the server already has {limits.max_sessions} live sessions "
                "(AISTACK_STT_STREAM_MAX_SESSIONS); try again later",
            )

    return router


async def _refuse(websocket: WebSocket, code: int, error: str, message: str) -> None:
    with contextlib.suppress(Exception):
        await websocket.send_json({"type": "error", "code": error, "message": message})
        await websocket.close(code=code, reason=error)


async def _serve(websocket: WebSocket, limits: StreamLimits, transcribe: Transcribe, sid: str):
    lock = asyncio.Lock()
    closed = False

    async def send(event: dict) -> None:
        if closed:
            return
        async with lock:
            await websocket.send_json(event)

    settings = getattr(websocket.app.state, "settings", None)
    beam_size = getattr(settings, "beam_size", 5)
    session: StreamSession | None = None
    reason = "stop"
    try:
        while True:
            waiter = asyncio.ensure_future(websocket.receive())
            ended = asyncio.ensure_future(session.ended.wait()) if session is not None else None
            pending = [waiter] + ([ended] if ended else [])
            done, _ = await asyncio.wait(
                pending, timeout=limits.idle_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            if ended is not None and not ended.done():
                ended.cancel()
            if ended is not None and ended in done:
                waiter.cancel()
                if session.failure is not None:
                    raise session.failure
                reason = "utterance_complete"
                break
            if not done and session is not None and session.busy():
                waiter.cancel()
                continue
            if not done:
                waiter.cancel()
                await _refuse(
                    websocket,
                    CLOSE_NORMAL,
                    "idle_timeout",
                    f"no audio or message for {limits.idle_timeout_s:g} s "
                    "(AISTACK_STT_STREAM_IDLE_TIMEOUT_S); the session is closed",
                )
                return
            message = waiter.result()
            if message["type"] == "websocket.disconnect":
                return
            data, text = message.get("bytes"), message.get("text")
            if data is not None:
                if len(data) > limits.max_frame_bytes:
                    await _refuse(
                        websocket,
                        CLOSE_TOO_BIG,
                        "frame_too_large",
                        f"an audio frame of {len(data)} bytes is over the limit of "
                        f"{limits.max_frame_bytes} (AISTACK_STT_STREAM_MAX_FRAME_BYTES); send "
                        "smaller frames, e.g. 100 ms (3200 bytes)",
                    )
                    return
                if len(data) % 2:
                    await _refuse(
                        websocket,
                        CLOSE_POLICY,
                        "invalid_audio",
                        f"an audio frame of {len(data)} bytes is not whole 16-bit samples; "
                        "send PCM16 little-endian mono at 16 kHz",
                    )
                    return
                if session is None:
                    session = await _open(
                        websocket, send, StreamOptions(), limits, transcribe, sid, beam_size
                    )
                await session.feed(data)
                continue
            try:
                control = _control(text)
            except OptionError as exc:
                await _refuse(websocket, CLOSE_POLICY, "invalid_message", str(exc))
                return
            kind = control.get("type")
            if kind == "start":
                if session is not None:
                    await _refuse(
                        websocket,
                        CLOSE_POLICY,
                        "invalid_message",
                        "the session has already started; send audio or stop",
                    )
                    return
                try:
                    options = parse_options(control, StreamOptions())
                except OptionError as exc:
                    await _refuse(websocket, CLOSE_POLICY, "invalid_option", str(exc))
                    return
                session = await _open(websocket, send, options, limits, transcribe, sid, beam_size)
            elif kind == "stop":
                if session is not None and session.options.mode == "auto_end" and session.count:
                    reason = "utterance_complete"  # its final is pending; stop changes nothing
                break
            else:
                await _refuse(
                    websocket,
                    CLOSE_POLICY,
                    "invalid_message",
                    f"unknown message type {kind!r}; use start or stop",
                )
                return
        if session is not None:
            await session.stop()
            if session.failure is not None:
                raise session.failure
        await send({"type": "session.ended", "reason": reason})
        await websocket.close(code=CLOSE_NORMAL)
    except WebSocketDisconnect:
        pass
    except APIError as exc:
        await _refuse(
            websocket,
            CLOSE_ERROR if exc.status >= 500 else CLOSE_POLICY,
            exc.code or "error",
            exc.message,
        )
    finally:
        closed = True
        if session is not None:
            await session.close()


async def _open(websocket, send, options, limits, transcribe, sid, beam_size) -> StreamSession:
    session = StreamSession(options, limits, transcribe, send, beam_size)
    await send(
        {
            "type": "session.started",
            "session_id": sid,
            "options": asdict(options),
            "limits": asdict(limits),
            "audio": {"encoding": "pcm_s16le", "sample_rate": SAMPLE_RATE, "channels": 1},
            "started_at": time.time(),
        }
    )
    return session


def _control(text: str | None) -> dict:
    try:
        value = json.loads(text or "")
    except ValueError:
        raise OptionError("message", 'a text message must be JSON, e.g. {"type": "stop"}') from None
    if not isinstance(value, dict):
        raise OptionError("message", "a text message must be a JSON object with a type")
    return value
