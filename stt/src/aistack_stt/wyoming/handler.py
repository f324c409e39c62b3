"""One Wyoming connection: read events, keep one request's audio, answer through the engine.

    describe                                  -> info
    ping                                      -> pong
    transcribe {name, language}               (optional; remembered for the next audio)
    synthesize {text, voice}                  -> audio-start, audio-chunk..., audio-stop
                                                 (speech.py)
    audio-start, audio-chunk..., audio-stop   -> transcript-start, transcript-chunk...,
                                                 transcript, transcript-stop
    (a failed transcription)                  -> error {text, code}; the connection stays

The streaming events follow the protocol's order: the classic `transcript` comes before
`transcript-stop`, so a client that knows nothing of streaming reads its answer as before.
Chunks are the segments Whisper produces, handed over as the engine finishes them.

Anything a well-behaved client cannot send (see `ProtocolError`, `AudioFormatError`,
`AudioTooLong`), a stalled client and a client that hangs up end this connection only; the
reason is logged. Unknown but well-formed event types are logged and dropped, as the
protocol asks of servers so that newer clients keep working with older ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import numpy as np

from ..config import WyomingSettings
from ..engine import Segment, Transcriber, TranscriptionRequest, TranscriptionResult
from ..errors import APIError
from ..metrics import Metrics
from ..models import ModelManager
from ..tts import TtsService
from .audio import AudioBuffer, AudioFormatError, AudioTooLong, PcmFormat
from .events import Event, ProtocolError, read_event, write_event
from .info import WHISPER_LANGUAGES, info_event, pick_model
from .live_decode import EarlyDecode
from .speech import STREAMING_EVENTS, synthesize

log = logging.getLogger("aistack_stt.wyoming")

ENDPOINT = "wyoming/transcribe"  # the metrics label, beside the HTTP endpoints
SPEAK_ENDPOINT = "wyoming/synthesize"
MAX_UNKNOWN_EVENTS = 100  # per connection; a newer client sends a few, a flood is hostile


class ClientGone(Exception):
    """The peer closed or reset the connection while we were busy for it."""


@dataclass(frozen=True)
class Services:
    """What a connection uses of the app: the engine, the models, metrics, request defaults."""

    engine: Transcriber  # the app's engine (the scheduler); only `transcribe` is used
    models: ModelManager
    metrics: Metrics
    beam_size: int = 5
    language: str | None = None
    tts: TtsService | None = None  # speech synthesis (tts/), when a voice is configured


@dataclass
class _Request:
    name: str | None = None
    language: str | None = None


class Connection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        services: Services,
        settings: WyomingSettings,
    ) -> None:
        self.reader, self.writer = reader, writer
        self.services, self.settings = services, settings
        peer = writer.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._request = _Request()
        self._audio: AudioBuffer | None = None
        self._format: PcmFormat | None = None
        self._read_ahead: asyncio.Task[Event | None] | None = None
        self._unknown = 0
        self._delivered = False  # the current request's transcript has been sent
        self._hung_up = False  # the client closed after its answer: end without complaint
        self._unknown_types: set[str] = set()
        self._early: EarlyDecode | None = None  # the request's VAD and early decode
        self._answered = False  # endpointing answered this request before its audio-stop

    async def run(self) -> None:
        try:
            await self._serve()
        except (ProtocolError, AudioFormatError, AudioTooLong) as exc:
            log.warning("wyoming %s: closing the connection: %s", self.peer, exc)
            with contextlib.suppress(Exception):
                await self._send(Event("error", {"text": str(exc), "code": "bad_request"}))
        except TimeoutError:
            log.warning(
                "wyoming %s: closing the connection: nothing received or read for %g s "
                "(AISTACK_STT_WYOMING_IDLE_TIMEOUT_S)",
                self.peer,
                self.settings.idle_timeout_s,
            )
        except (ClientGone, ConnectionError) as exc:
            detail = f" ({exc})" if str(exc) else ""
            log.warning("wyoming %s: the client went away mid-request%s", self.peer, detail)
        finally:
            if self._read_ahead is not None:
                self._read_ahead.cancel()
            if self._early is not None:
                self._early.close()
            self.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.writer.wait_closed(), 5)

    async def _serve(self) -> None:
        while not self._hung_up:
            try:
                event = await self._next_event()
            except ConnectionError:
                if self._audio is not None:
                    raise
                # Reset between requests: a client that left without reading everything
                # (transcript-stop after its transcript). Nothing of it was pending.
                return
            if event is None:
                if self._audio is not None:
                    raise ClientGone("closed before audio-stop")
                return
            await self._dispatch(event)

    async def _next_event(self) -> Event | None:
        read = self._read_ahead or asyncio.ensure_future(self._read())
        self._read_ahead = None
        return await asyncio.wait_for(read, self.settings.idle_timeout_s)

    async def _read(self) -> Event | None:
        return await read_event(self.reader, self.settings.max_event_bytes)

    async def _dispatch(self, event: Event) -> None:
        kind, data = event.type, event.data
        if kind == "describe":
            await self._send(info_event(self.services.models, self.services.tts))
        elif kind == "ping":
            await self._send(Event("pong", {"text": data.get("text")} if "text" in data else {}))
        elif kind == "transcribe":
            self._request = _Request(_text(data, "name", kind), _text(data, "language", kind))
        elif kind == "synthesize":
            await self._speak(data)
        elif kind in STREAMING_EVENTS:
            pass  # the plain `synthesize` that follows them carries the whole text
        elif kind == "audio-start":
            self._format = PcmFormat.from_data(data, kind)
            self._audio = AudioBuffer(self.settings.max_audio_s)
            self._start_early()
        elif kind == "audio-chunk":
            if self._audio is None:
                raise ProtocolError("audio-chunk without audio-start")
            fmt = PcmFormat.from_data(data, kind) if "rate" in data else self._format
            assert fmt is not None
            samples = self._audio.add(event.payload or b"", fmt)
            if self._early is not None:
                await self._early.feed(samples, self._audio.so_far)
                if self._early.endpoint_reached():
                    await self._answer_at_endpoint()
        elif kind == "audio-stop":
            if self._audio is None:
                raise ProtocolError("audio-stop without audio-start")
            audio, request = self._audio.audio(), self._request
            early, self._early = self._early, None
            self._audio, self._request = None, _Request()
            if self._answered:  # endpointing has answered already; the rest was silence
                self._answered = False
                return
            reuse = await early.reusable() if early is not None else None
            if reuse is not None and request != early.request:
                reuse.cancel()  # the client changed its request after audio-start
                reuse = None
            decoded = "early" if reuse is not None else "after_stop"
            self.services.metrics.wyoming_decodes.inc(decoded=decoded)
            await self._answer(audio, request, reuse)
        else:
            # Dropped, as the protocol asks; logged once per type, and a flood of them is hostile.
            self._unknown += 1
            if self._unknown > MAX_UNKNOWN_EVENTS:
                raise ProtocolError(f"more than {MAX_UNKNOWN_EVENTS} events of unknown types")
            if kind not in self._unknown_types and len(self._unknown_types) < 16:
                self._unknown_types.add(kind)
                log.info("wyoming %s: ignoring unknown event type %r", self.peer, kind)

    def _start_early(self) -> None:
        if self._early is not None:
            self._early.close()
        self._early, self._answered = None, False
        settings = self.settings
        if not settings.early_decode:
            return
        request = self._request

        async def decode(audio: np.ndarray) -> TranscriptionResult:
            return await self.services.engine.transcribe(self._job(audio, request))

        self._early = EarlyDecode(decode, settings.vad_silence_ms, settings.endpoint_s, request)

    async def _answer_at_endpoint(self) -> None:
        """`endpoint_s` of silence after speech: answer now; drop the rest until audio-stop."""
        assert self._early is not None and self._audio is not None
        early, request = self._early, self._request
        reuse = await early.reusable()
        if reuse is None:
            return
        if request != early.request:  # the client changed its request after audio-start
            reuse.cancel()
            return
        self._early, self._answered = None, True
        self.services.metrics.wyoming_decodes.inc(decoded="endpoint")
        await self._answer(self._audio.so_far(), request, reuse)

    async def _answer(
        self, audio: np.ndarray, request: _Request, early: asyncio.Task | None = None
    ) -> None:
        """Transcribe while watching the connection: a client that hangs up cancels the work.

        A client that hangs up once it has its `transcript` (before `transcript-stop`, as
        clients without streaming do) ends the connection normally.
        """
        started = time.monotonic()
        self._delivered = False
        if not audio.size:  # audio-start then audio-stop: nothing was said
            for event in (
                Event("transcript-start"),
                Event("transcript", {"text": ""}),
                Event("transcript-stop"),
            ):
                await self._send(event)
            self._count("200", started)
            return
        work = asyncio.ensure_future(self._transcribe(audio, request, early))
        read = asyncio.ensure_future(self._read())
        await asyncio.wait({work, read}, return_when=asyncio.FIRST_COMPLETED)
        gone = read.done() and (read.exception() is not None or read.result() is None)
        if gone and not work.done() and not self._delivered:
            work.cancel()
            with contextlib.suppress(BaseException):
                await work
            self._count("499", started)
            error = read.exception()
            if isinstance(error, ProtocolError):
                raise error
            raise ClientGone(str(error) if error else "closed during the transcription")
        self._read_ahead = read  # the client's next event, kept for the main loop
        try:
            await work
        except APIError as exc:
            self._count(str(exc.status), started)
            log.info("wyoming %s: transcription refused: %s", self.peer, exc.message)
            await self._send(Event("error", {"text": exc.message, "code": exc.code or "error"}))
            return
        except ConnectionError:
            if not self._delivered:
                raise
        self._count("200", started)
        if read.done() and not isinstance(read.exception(), ProtocolError):
            # Answered, then the client hung up (or its next event is already here).
            self._hung_up = read.exception() is not None or read.result() is None

    def _job(self, audio: np.ndarray, request: _Request) -> TranscriptionRequest:
        services = self.services
        return TranscriptionRequest(
            audio=audio,
            model=pick_model(services.models, request.name),
            language=_language(request.language) or services.language,
            beam_size=services.beam_size,
        )

    async def _transcribe(
        self, audio: np.ndarray, request: _Request, early: asyncio.Task | None = None
    ) -> None:
        """Send the transcript; `early` is a decode already under way (live_decode.py),
        whose segments go out once it is done."""
        services = self.services
        job = self._job(audio, request)
        loop = asyncio.get_running_loop()
        segments: asyncio.Queue[str] = asyncio.Queue()

        def on_segment(segment: Segment) -> None:  # called from the engine's worker thread
            loop.call_soon_threadsafe(segments.put_nowait, segment.text)

        decode = early or asyncio.ensure_future(
            services.engine.transcribe(job, on_segment=on_segment)
        )
        started = False
        try:
            while not decode.done() or not segments.empty():
                if segments.empty():
                    get = asyncio.ensure_future(segments.get())
                    await asyncio.wait({decode, get}, return_when=asyncio.FIRST_COMPLETED)
                    if not get.done():
                        get.cancel()
                        continue
                    text = get.result()
                else:
                    text = segments.get_nowait()
                if not started:
                    await self._send(Event("transcript-start", _language_data(job.language)))
                    started, text = True, text.lstrip()
                await self._send(Event("transcript-chunk", {"text": text}))
        finally:
            if not decode.done():
                decode.cancel()
                with contextlib.suppress(BaseException):
                    await decode
        result: TranscriptionResult = decode.result()  # raises the engine's APIError
        if not started:
            await self._send(Event("transcript-start", _language_data(result.language)))
            for n, segment in enumerate(result.segments):  # an early decode's, all at once
                text = segment.text.lstrip() if n == 0 else segment.text
                await self._send(Event("transcript-chunk", {"text": text}))
        await self._send(Event("transcript", {"text": result.text, "language": result.language}))
        self._delivered = True
        await self._send(Event("transcript-stop"))

    async def _speak(self, data: dict) -> None:
        """Answer `synthesize` with audio (speech.py); a refusal is an `error` event."""
        started = time.monotonic()
        try:
            await synthesize(self.services.tts, data, self._send)
        except APIError as exc:
            self._count(str(exc.status), started, SPEAK_ENDPOINT)
            log.info("wyoming %s: synthesis refused: %s", self.peer, exc.message)
            await self._send(Event("error", {"text": exc.message, "code": exc.code or "error"}))
            return
        self._count("200", started, SPEAK_ENDPOINT)

    async def _send(self, event: Event) -> None:
        await asyncio.wait_for(write_event(self.writer, event), self.settings.idle_timeout_s)

    def _count(self, status: str, started: float, endpoint: str = ENDPOINT) -> None:
        metrics = self.services.metrics
        metrics.requests.inc(endpoint=endpoint, status=status)
        metrics.latency.observe(time.monotonic() - started, endpoint=endpoint)


def _text(data: dict, name: str, event: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ProtocolError(f"{event}: {name} {value!r} is not a string")
    return value or None


def _language(code: str | None) -> str | None:
    """Whisper's code for what the client sends: `en`, `en-US` and `en_us` all mean `en`."""
    if code is None:
        return None
    norm = code.strip().lower().replace("_", "-")
    for candidate in (norm, norm.split("-")[0]):
        if candidate in WHISPER_LANGUAGES:
            return candidate
    raise APIError(
        400,
        f"language {code!r} is not one Whisper knows; use an ISO-639-1 code such as en or de",
        param="language",
        code="invalid_value",
    )


def _language_data(language: str | None) -> dict:
    return {"language": language} if language else {}
