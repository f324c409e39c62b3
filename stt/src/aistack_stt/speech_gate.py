"""Requests with no speech are answered at once, with empty text, and never reach the model.

`SpeechGate` is a `Transcriber` (engine.py) that wraps another one (the scheduler in the
server) and asks Silero VAD (silence.py) whether a request of up to 30 s holds speech. It
sits in front of every protocol: the OpenAI API, the WebSocket stream and the realtime API
all transcribe through `app.state.engine`. Longer audio needs no gate: the scheduler cuts it
into windows at the speech VAD finds, so audio with none yields no window and no text.

`health`, `render_metrics` and `close` are the wrapped transcriber's.
"""

from __future__ import annotations

import asyncio

from .audio import duration
from .engine import (
    SegmentCallback,
    Transcriber,
    TranscriptionRequest,
    TranscriptionResult,
    check_task,
)
from .models import ModelManager
from .silence import has_speech

GATE_MAX_S = 30.0  # longer audio is split at VAD speech chunks by the scheduler already


class SpeechGate:
    """A `Transcriber`: silent requests get an empty result, the rest go to `inner`."""

    def __init__(self, inner: Transcriber, models: ModelManager) -> None:
        self.inner = inner
        self.models = models

    async def transcribe(
        self, request: TranscriptionRequest, on_segment: SegmentCallback | None = None
    ) -> TranscriptionResult:
        seconds = duration(request.audio)
        if request.silence.vad_filter and seconds <= GATE_MAX_S:
            check_task(request)
            model_id = self.models.canonical_id(request.model)
            self.models.resolve(model_id)  # an unknown model is still a 404, silent or not
            # Silero VAD is CPU work (about 5 ms per second of audio here): off the loop.
            if not await asyncio.to_thread(has_speech, request.audio, request.silence):
                return TranscriptionResult(
                    model=model_id,
                    task=request.task,
                    language=request.language or "en",
                    language_probability=0.0,
                    duration=seconds,
                    segments=[],
                    processing_seconds=0.0,
                )
        return await self.inner.transcribe(request, on_segment)

    def health(self) -> dict:
        return self.inner.health()

    def render_metrics(self) -> str:
        return self.inner.render_metrics()

    def backpressure(self) -> str:
        """The inner transcriber's level (scheduling/backpressure.py); `normal` if it has none."""
        level = getattr(self.inner, "backpressure", None)
        return level() if level is not None else "normal"

    def close(self) -> None:
        self.inner.close()
