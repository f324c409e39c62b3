"""One `StreamingRecognize` call: AudioChunks into a live session, its events out as STTResults.

The session (live/session.py) is the one every live protocol runs: VAD, partials while
speech is active, a final at the end of each utterance (or of the only one, with
VAD_AUTO_END). This adapter only checks and converts chunks (any sample rate → 16 kHz),
watches the idle timeout and renders events; a refusal is a `Refusal` (errors.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from ..config import StreamLimits
from ..live.events import Event, Final, Partial, SpeechStarted
from ..live.resample import MAX_RATE, MIN_RATE, TARGET_RATE, PcmResampler
from ..live.session import LiveSession, Transcribe
from . import stt_pb2 as pb
from .errors import Refusal, from_api_error
from .language_names import language_name
from .sessions import RegisteredSession
from .timings import DecodeTimings


class GrpcStream:
    def __init__(
        self,
        registered: RegisteredSession,
        limits: StreamLimits,
        transcribe: Transcribe,
        beam_size: int,
    ) -> None:
        self.registered = registered
        self.limits = limits
        self.timings = DecodeTimings()
        self.session = LiveSession(
            registered.options, limits, self.timings.measure(transcribe), self._emit, beam_size
        )
        self._out: asyncio.Queue[tuple[pb.STTResult, float]] = asyncio.Queue()
        self._starts: dict[int, float] = {}
        self._resampler: PcmResampler | None = None
        self._pending: asyncio.Future | None = None

    # -- events out ---------------------------------------------------------------------------

    async def _emit(self, event: Event) -> None:
        if isinstance(event, SpeechStarted):
            self._starts[event.utterance] = event.start
            return
        if isinstance(event, Partial):
            result = pb.STTResult(
                text=event.text,
                is_final=False,
                start_sec=self._starts.get(event.utterance, 0.0),
                end_sec=event.end,
                language_code=self.session.language or "",
                language=language_name(self.session.language),
            )
        elif isinstance(event, Final):
            result = pb.STTResult(
                text=event.text,
                is_final=True,
                start_sec=event.start,
                end_sec=event.end,
                language_code=event.language,
                language=language_name(event.language),
                probability=event.language_probability,
            )
        else:
            return  # speech stopped: the final that follows says it
        self._out.put_nowait((result, time.monotonic()))

    async def results(self, first: pb.AudioChunk, chunks) -> AsyncIterator[pb.STTResult]:
        """The call's responses, in order; raises `Refusal` where the call must fail."""
        reader = asyncio.ensure_future(self._read(first, chunks.__aiter__()))
        try:
            while True:
                getter = asyncio.ensure_future(self._out.get())
                done, _ = await asyncio.wait({getter, reader}, return_when=asyncio.FIRST_COMPLETED)
                if getter not in done:
                    getter.cancel()
                    while not self._out.empty():
                        result, at = self._out.get_nowait()
                        self.timings.emitted(at)
                        yield result
                    reader.result()  # the refusal, if the input ended with one
                    return
                result, at = getter.result()
                self.timings.emitted(at)
                yield result
        finally:
            for task in (reader, self._pending):
                if task is not None and not task.done():
                    task.cancel()
            await self.session.close()

    # -- audio in -----------------------------------------------------------------------------

    async def _read(self, chunk: pb.AudioChunk | None, chunks) -> None:
        while chunk is not None:
            await self._take(chunk)
            if chunk.is_final or self.session.ended.is_set():
                break
            chunk = await self._next(chunks)
        if self._resampler is not None:
            tail = self._resampler.flush()
            if tail and not self.session.ended.is_set():
                await self.session.feed(tail)
        await self.session.stop()
        if self.session.failure is not None:
            raise from_api_error(self.session.failure)

    async def _next(self, chunks) -> pb.AudioChunk | None:
        """The next chunk; None at the end of input or when the session ended by itself."""
        if self._pending is None:
            self._pending = asyncio.ensure_future(anext(chunks, None))
        ended = asyncio.ensure_future(self.session.ended.wait())
        try:
            while True:
                done, _ = await asyncio.wait(
                    {self._pending, ended},
                    timeout=self.limits.idle_timeout_s,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if self._pending in done:
                    pending, self._pending = self._pending, None
                    return pending.result()
                if ended in done:
                    return None
                if not self.session.busy():  # waiting on our final is not idling
                    raise Refusal(
                        "DEADLINE_EXCEEDED",
                        "idle_timeout",
                        f"no audio for {self.limits.idle_timeout_s:g} s "
                        "(AISTACK_STT_STREAM_IDLE_TIMEOUT_S); the session is closed",
                    )
        finally:
            ended.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ended

    async def _take(self, chunk: pb.AudioChunk) -> None:
        sid = self.registered.session_id
        if chunk.session_id and chunk.session_id != sid:
            raise Refusal(
                "INVALID_ARGUMENT",
                "session_mismatch",
                f"a chunk names session {chunk.session_id!r} in the stream of {sid!r}",
            )
        data = chunk.pcm16
        if len(data) > self.limits.max_frame_bytes:
            raise Refusal(
                "INVALID_ARGUMENT",
                "chunk_too_large",
                f"an AudioChunk of {len(data)} bytes is over the limit of "
                f"{self.limits.max_frame_bytes} (AISTACK_STT_STREAM_MAX_FRAME_BYTES); send "
                "smaller chunks, e.g. 100 ms",
            )
        if len(data) % 2:
            raise Refusal(
                "INVALID_ARGUMENT",
                "invalid_audio",
                f"an AudioChunk of {len(data)} bytes is not whole 16-bit samples; send PCM16 "
                "little-endian mono",
            )
        rate = chunk.sample_rate or (self._resampler.rate if self._resampler else TARGET_RATE)
        if not MIN_RATE <= rate <= MAX_RATE:
            raise Refusal(
                "INVALID_ARGUMENT",
                "invalid_sample_rate",
                f"sample_rate {rate} is outside {MIN_RATE}-{MAX_RATE} Hz",
            )
        if self._resampler is None or self._resampler.rate != rate:
            tail = self._resampler.flush() if self._resampler is not None else b""
            self._resampler = PcmResampler(rate)
            if tail:
                await self.session.feed(tail)
        self.timings.audio_arrived()
        pcm = self._resampler(data)
        if pcm:
            await self.session.feed(pcm)
