"""The seam between the protocols and the decoder: the `Transcriber` protocol and its values.

`await transcriber.transcribe(request, on_segment=None) -> TranscriptionResult` is the whole
interface every protocol adapter uses (the OpenAI HTTP API, the live WebSocket sessions, the
Wyoming server). When it streams, it passes `on_segment`, which is called from a worker
thread with each segment, in order, exactly once, as soon as it is known. The scheduler
(`scheduling/`) is the implementation; `/health` and `/metrics` read it through `health()`
and `render_metrics()`.

The rules every implementation applies to a request live here too, once: the tasks, the
English-only rule of `*.en` models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from .errors import APIError
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
    hotwords: str | None = None  # Speaches' field: names to spell right (vocabulary.py)
    temperature: float | None = None  # None or 0: faster-whisper's fallback schedule
    word_timestamps: bool = False
    beam_size: int = 5
    silence: SilenceOptions = DEFAULT_SILENCE  # silence.py: VAD gate and no-speech thresholds
    best_of: int = 1  # candidates sampled at a temperature above 0
    fallback: bool = True  # False: one decode at temperature 0 only (live interims)
    patience: float = 1.0  # beam search patience
    languages: tuple[str, ...] | None = None  # detection picks only among these
    interim: bool = False  # a live session's partial: queued behind finals, may be refused
    # An interim not started by this time.monotonic() is dropped (QueueFull): words that
    # reach the screen late are worse than none, and the session's next interim is fresher.
    start_by: float | None = None
    profile: str | None = None  # a live decode profile (live/decoding.py); None: the server's


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


@runtime_checkable
class Transcriber(Protocol):
    """What the API, the live sessions, /health and /metrics need from the engine."""

    async def transcribe(
        self, request: TranscriptionRequest, on_segment: SegmentCallback | None = None
    ) -> TranscriptionResult: ...

    def health(self) -> dict:
        """Queue and lane state for /health (a JSON object)."""
        ...

    def render_metrics(self) -> str:
        """The engine's own Prometheus metrics, appended to /metrics."""
        ...

    def close(self) -> None: ...


def check_task(request: TranscriptionRequest) -> None:
    if request.task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {request.task!r}")


def english_only_error(model_id: str, request: TranscriptionRequest) -> APIError | None:
    """Why an English-only model cannot serve this request, or None when it can."""
    if request.task == "translate":
        return APIError(
            400,
            f"model {model_id!r} is English-only and cannot translate; use a multilingual "
            "model (e.g. base, small, large-v3)",
            param="model",
            code="invalid_value",
        )
    if request.language not in (None, "en"):
        return APIError(
            400,
            f"model {model_id!r} is English-only; language {request.language!r} needs a "
            "multilingual model",
            param="language",
            code="invalid_value",
        )
    return None
