"""The seam between HTTP and faster-whisper: every transcription goes through `Engine`.

`Engine.transcribe(request, on_segment=None) -> TranscriptionResult` is the whole interface.
The HTTP layer builds a `TranscriptionRequest`, awaits the result, and formats it; when it
streams, it passes `on_segment`, which is called (from the worker thread) with each segment
as soon as faster-whisper yields it.

This implementation is deliberately plain: one worker thread per call, one transcription at
a time per model (an asyncio lock per model id), waiting requests counted as queue depth. A
scheduler with lanes, batching and a bounded queue (scheduler.py) replaces it by providing
the same `transcribe` coroutine; nothing above this module needs to change.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .audio import duration
from .errors import APIError
from .metrics import Metrics
from .models import ModelManager
from .silence import DEFAULT as DEFAULT_SILENCE
from .silence import SilenceOptions

TASKS = ("transcribe", "translate")


@dataclass(frozen=True)
class TranscriptionRequest:
    audio: np.ndarray = field(repr=False)
    model: str
    task: str = "transcribe"
    language: str | None = None  # None: detect from the first 30 s
    prompt: str | None = None
    temperature: float | None = None  # None or 0: faster-whisper's fallback schedule
    word_timestamps: bool = False
    beam_size: int = 5
    silence: SilenceOptions = DEFAULT_SILENCE  # silence.py: VAD gate and no-speech thresholds


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    probability: float


@dataclass(frozen=True)
class Segment:
    id: int
    seek: int
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: list[Word] | None = None


@dataclass(frozen=True)
class TranscriptionResult:
    model: str
    task: str
    language: str
    language_probability: float
    duration: float
    segments: list[Segment]
    processing_seconds: float

    @property
    def text(self) -> str:
        return "".join(s.text for s in self.segments).strip()

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in (s.words or [])]


SegmentCallback = Callable[[Segment], None]


class Engine:
    def __init__(self, models: ModelManager, metrics: Metrics | None = None) -> None:
        self.models = models
        self.metrics = metrics or models.metrics
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="aistack-stt")
        self._locks: dict[str, asyncio.Lock] = {}

    async def transcribe(
        self, request: TranscriptionRequest, on_segment: SegmentCallback | None = None
    ) -> TranscriptionResult:
        if request.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, not {request.task!r}")
        mid = self.models.canonical_id(request.model)
        self.models.resolve(mid)  # unknown ids fail now, before they wait in line
        lock = self._locks.setdefault(mid, asyncio.Lock())
        loop = asyncio.get_running_loop()
        cancelled = threading.Event()
        self.metrics.queue_depth.inc()
        try:
            await lock.acquire()
        finally:
            self.metrics.queue_depth.dec()
        try:
            self.metrics.in_progress.inc()
            future = loop.run_in_executor(self._executor, self._run, request, on_segment, cancelled)
            try:
                result = await asyncio.shield(future)
            except asyncio.CancelledError:
                # The client went away: stop at the next segment, and keep the model's turn
                # until the worker is really done so two decodes never overlap.
                cancelled.set()
                await asyncio.wait([future])
                raise
        finally:
            self.metrics.in_progress.dec()
            lock.release()
        self.metrics.audio_seconds.inc(result.duration)
        if result.duration > 0:
            self.metrics.rtf.observe(result.processing_seconds / result.duration)
        return result

    def _run(
        self,
        request: TranscriptionRequest,
        on_segment: SegmentCallback | None,
        cancelled: threading.Event,
    ) -> TranscriptionResult:
        with self.models.use(request.model) as entry:
            if not entry.multilingual:
                if request.task == "translate":
                    raise APIError(
                        400,
                        f"model {entry.id!r} is English-only and cannot translate; use a "
                        "multilingual model (e.g. base, small, large-v3)",
                        param="model",
                        code="invalid_value",
                    )
                if request.language not in (None, "en"):
                    raise APIError(
                        400,
                        f"model {entry.id!r} is English-only; language "
                        f"{request.language!r} needs a multilingual model",
                        param="language",
                        code="invalid_value",
                    )
            started = time.monotonic()
            temperature = (
                request.temperature if request.temperature else [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
            )
            raw_segments, info = entry.model.transcribe(
                request.audio,
                language=request.language,
                task=request.task,
                beam_size=request.beam_size,
                temperature=temperature,
                initial_prompt=request.prompt or None,
                word_timestamps=request.word_timestamps,
                no_speech_threshold=request.silence.no_speech_threshold,
                log_prob_threshold=request.silence.log_prob_threshold,
                compression_ratio_threshold=request.silence.compression_ratio_threshold,
            )
            segments: list[Segment] = []
            for raw in raw_segments:  # decoding happens while iterating
                if cancelled.is_set():
                    break
                seg = _segment(len(segments), raw)
                segments.append(seg)
                if on_segment is not None:
                    on_segment(seg)
            return TranscriptionResult(
                model=entry.id,
                task=request.task,
                language=info.language,
                language_probability=float(info.language_probability),
                duration=duration(request.audio),
                segments=segments,
                processing_seconds=time.monotonic() - started,
            )

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _segment(index: int, raw) -> Segment:
    words = None
    if raw.words is not None:
        words = [
            Word(float(w.start), float(w.end), w.word, float(w.probability)) for w in raw.words
        ]
    return Segment(
        id=index,
        seek=int(raw.seek),
        start=float(raw.start),
        end=float(raw.end),
        text=raw.text,
        tokens=list(raw.tokens),
        temperature=float(raw.temperature or 0.0),
        avg_logprob=float(raw.avg_logprob),
        compression_ratio=float(raw.compression_ratio),
        no_speech_prob=float(raw.no_speech_prob),
        words=words,
    )
