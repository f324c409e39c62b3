"""One live session: VAD, partials, finals. Knows no protocol; it emits typed events.

Utterances are delimited by Silero VAD (vad.py), run in a worker thread so the event loop
keeps serving other sessions while it judges a frame. While an utterance is spoken, its
audio so far is transcribed every `partial_interval_ms`; the words two consecutive
hypotheses agree on become the committed prefix, which only grows; the rest is the unstable
tail. When VAD hears `vad_silence_ms` of silence, the utterance is transcribed once more, in
full, as its final. Transcriptions go through the app's `Transcriber` (the scheduler's hot
lane), so many sessions share batches with each other and with short HTTP requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from ..config import StreamLimits
from ..engine import TranscriptionRequest, TranscriptionResult
from ..errors import APIError, QueueFull
from .agreement import PrefixAgreement
from .events import Event, Final, FinalSegment, Partial, SpeechStarted, SpeechStopped
from .options import StreamOptions
from .vad import SAMPLE_RATE, StreamingVad

log = logging.getLogger("aistack_stt.live")

SPEECH_PAD_S = 0.3  # audio kept before VAD's start and after its end, as get_speech_timestamps
# Finals transcribed or waiting per session before the session stops reading: a client that
# sends faster than real time is held back (TCP does the rest) instead of queueing finals,
# each holding up to max_utterance_s of audio.
MAX_PENDING_FINALS = 2
# How long a final may wait for room in a full queue (503 queue_full) before the session
# ends with that error; any other failure ends it at once.
FINAL_RETRY_S = 60.0
# An interim (partial) not started this long after it was asked is dropped by the scheduler
# (finals and other sessions came first): stale words on screen help nobody. The session
# asks again INTERIM_RETRY_S later, with the audio it has by then.
INTERIM_MAX_WAIT_S = 0.1
INTERIM_RETRY_S = 0.1
Transcribe = Callable[[TranscriptionRequest], Awaitable[TranscriptionResult]]
Emit = Callable[[Event], Awaitable[None]]


@dataclass
class _Utterance:
    index: int
    start_sample: int  # first sample kept (VAD start minus padding)
    agreement: PrefixAgreement
    last_partial_at: int  # samples received when the last partial was started
    partial_task: asyncio.Task | None = None
    final_sent: bool = False


class LiveSession:
    def __init__(
        self,
        options: StreamOptions,
        limits: StreamLimits,
        transcribe: Transcribe,
        emit: Emit,
        beam_size: int = 5,
        use_vad: bool = True,
    ) -> None:
        self.use_vad = use_vad  # False: the client says where utterances end (commit)
        self.options = options
        self.limits = limits
        self.transcribe = transcribe
        self.emit = emit
        self.beam_size = beam_size
        self.vad = StreamingVad(options.vad_threshold, options.vad_silence_ms)
        self.audio = np.zeros(0, dtype=np.float32)  # the session's audio an utterance may need
        self.base = 0  # session sample index of self.audio[0] (old audio is dropped)
        self.received = 0
        self.current: _Utterance | None = None
        self.count = 0
        self.finals: list[asyncio.Task] = []
        self.ended = asyncio.Event()  # set after auto_end's final, or when a task failed
        self.failure: APIError | None = None
        self.language: str | None = options.language
        # Opt-in capture (capture.py): the app's live transcriber carries the store, if any.
        store = getattr(transcribe, "capture", None)
        self.recording = store.recording() if store is not None and options.capture else None

    # -- audio in ---------------------------------------------------------------------------

    async def feed(self, pcm: bytes) -> None:
        """PCM16 little-endian mono 16 kHz. Called by one receive loop, one frame at a time.

        Returns only once fewer than MAX_PENDING_FINALS finals are pending: the caller stops
        reading the client meanwhile.
        """
        if self.failure is not None:
            return  # the session is ending with its reason; the loop reports it
        if self.recording is not None:
            self.recording.audio(pcm)
        await self._feed(pcm)
        utt = self.current
        # Memory stays bounded however long the session or the utterance: only the audio
        # the utterance in progress may still need is kept (at most max_utterance_s).
        self._trim(utt.start_sample if utt is not None else self.received - self._pad)
        await self._backpressure()

    @property
    def _partial_interval(self) -> int:
        """Samples between two partials of an utterance (`partial_interval_ms`)."""
        return self.options.partial_interval_ms * SAMPLE_RATE // 1000

    @property
    def _pad(self) -> int:
        return int(SPEECH_PAD_S * SAMPLE_RATE)

    async def _backpressure(self) -> None:
        self.finals = [task for task in self.finals if not task.done()]
        while len(self.finals) >= MAX_PENDING_FINALS and self.failure is None:
            await asyncio.wait([self.finals[0]])
            self.finals = [task for task in self.finals if not task.done()]

    async def _feed(self, pcm: bytes) -> None:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        self.audio = np.concatenate([self.audio, samples])
        self.received += samples.shape[0]
        if not self.use_vad and self.current is None:
            await self._start(self.received - samples.shape[0], pad=False)
        # Silero is CPU work: a thread, not the event loop (the model is stateful per
        # session and fed in order, as this coroutine is never run twice at once).
        vad_events = await asyncio.to_thread(self.vad.feed, samples) if self.use_vad else ()
        for event in vad_events:
            if event.kind == "start" and self.current is None:
                if self.options.mode == "auto_end" and self.count:
                    continue  # auto_end: one utterance per session, later speech is ignored
                await self._start(event.sample)
            elif event.kind == "end" and self.current is not None:
                pad = int(SPEECH_PAD_S * SAMPLE_RATE)
                end = min(event.sample + pad, self.received)
                self._finish(end)
                await self.emit(SpeechStopped(self.count, end / SAMPLE_RATE))
        utt = self.current
        if utt is None:
            return
        if self.received - utt.start_sample >= self.limits.max_utterance_s * SAMPLE_RATE:
            self._finish(self.received)  # too long for one Whisper window: cut here
            await self._start(self.received)
            return
        interval = self._partial_interval
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
        if self.recording is not None:
            self.recording.close()  # written by the capture thread, off this loop
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
            await self.emit(SpeechStarted(self.count, start / SAMPLE_RATE))

    def _finish(self, end_sample: int) -> None:
        utt = self.current
        assert utt is not None
        self.current = None
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

    def _request(self, audio: np.ndarray, interim: bool = False) -> TranscriptionRequest:
        return TranscriptionRequest(
            audio=audio,
            model=self.options.model,
            language=self.language,
            prompt=self.options.prompt,
            hotwords=self.options.hotwords,
            beam_size=self.beam_size,
            task=self.options.task,
            interim=interim,
            start_by=time.monotonic() + INTERIM_MAX_WAIT_S if interim else None,
            profile=self.options.profile,
            languages=self.options.languages,
        )

    async def _partial(self, utt: _Utterance, upto: int) -> None:
        try:
            audio = self._slice(utt.start_sample, upto)
            result = await self.transcribe(self._request(audio, interim=True))
        except QueueFull:
            # Busy or too late: skip this partial (the final still comes); ask again soon.
            retry = self.received - self._partial_interval + int(INTERIM_RETRY_S * SAMPLE_RATE)
            utt.last_partial_at = min(utt.last_partial_at, retry)
            return
        if utt.final_sent:
            return  # a partial after the final would only confuse
        committed, unstable = utt.agreement.update(result.text)
        text = f"{committed} {unstable}".strip()
        await self.emit(Partial(utt.index, committed, unstable, text, round(upto / SAMPLE_RATE, 3)))

    async def _final(
        self, utt: _Utterance, audio: np.ndarray, end: int, previous: asyncio.Task | None
    ) -> None:
        offset = utt.start_sample / SAMPLE_RATE
        result = None
        loop = asyncio.get_running_loop()
        give_up = loop.time() + FINAL_RETRY_S
        while result is None:
            try:
                result = await self.transcribe(self._request(audio))
            except QueueFull as exc:
                # Only a full queue is worth waiting for; a model that cannot load, or any
                # other failure, ends the session with its reason instead of retrying forever.
                if loop.time() >= give_up:
                    raise
                await asyncio.sleep(min(2.0, float(exc.retry_after)))
        # Finals go out in utterance order, and after the utterance's last partial.
        for before in (previous, utt.partial_task):
            if before is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await before
        if self.options.language is None and self.language is None:
            self.language = result.language  # keep the session's language stable
        utt.final_sent = True
        if self.recording is not None:
            self.recording.final(result.text, round(offset, 3), end / SAMPLE_RATE, result.language)
        segments = [
            FinalSegment(round(offset + s.start, 3), round(offset + s.end, 3), s.text.strip())
            for s in result.segments
        ]
        await self.emit(
            Final(
                utterance=utt.index,
                text=result.text,
                start=round(offset, 3),
                end=round(end / SAMPLE_RATE, 3),
                language=result.language,
                segments=segments,
                language_probability=round(result.language_probability, 4),
            )
        )
        if self.options.mode == "auto_end":
            self.ended.set()
