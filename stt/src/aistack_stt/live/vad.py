"""Silero VAD over a live stream: speech start and end, decided as audio arrives.

faster-whisper ships the Silero model (`faster_whisper.vad`) but only runs it over a whole
recording. The model itself is recurrent (state `h`, `c`) and looks at 512-sample windows
plus 64 samples of context, so it can be fed window by window, carrying the state over;
this module does that and applies the same hysteresis as `get_speech_timestamps`:
speech starts above `threshold`, and ends after `min_silence_ms` below `threshold - 0.15`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from faster_whisper.vad import get_vad_model

SAMPLE_RATE = 16000
WINDOW = 512  # samples per VAD decision (32 ms)
CONTEXT = 64


@dataclass(frozen=True)
class VadEvent:
    kind: str  # "start" | "end"
    sample: int  # position in the stream (samples since the session began)


class StreamingVad:
    def __init__(self, threshold: float = 0.5, min_silence_ms: int = 500) -> None:
        self.threshold = threshold
        self.neg_threshold = max(threshold - 0.15, 0.01)
        self.min_silence = int(SAMPLE_RATE * min_silence_ms / 1000)
        self._session = get_vad_model().session
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(CONTEXT, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
        self._position = 0  # samples already judged
        self.speaking = False
        self._silence_from: int | None = None
        self.last_probability = 0.0

    def feed(self, audio: np.ndarray) -> list[VadEvent]:
        """Judge whole 32 ms windows of the new audio; the remainder waits for more."""
        self._pending = np.concatenate([self._pending, audio.astype(np.float32, copy=False)])
        count = self._pending.shape[0] // WINDOW
        if count == 0:
            return []
        frames = self._pending[: count * WINDOW].reshape(count, WINDOW)
        self._pending = self._pending[count * WINDOW :]
        # Each window is preceded by the last 64 samples of the one before it.
        previous = np.concatenate([self._context[None, :], frames[:-1, -CONTEXT:]], axis=0)
        self._context = frames[-1, -CONTEXT:].copy()
        batch = np.concatenate([previous, frames], axis=1)
        probs, self._h, self._c = self._session.run(
            None, {"input": batch, "h": self._h, "c": self._c}
        )
        events = []
        for p in np.asarray(probs).reshape(-1):
            events.extend(self._step(float(p)))
            self._position += WINDOW
        return events

    def _step(self, p: float) -> list[VadEvent]:
        self.last_probability = p
        here = self._position
        if p >= self.threshold:
            self._silence_from = None
            if not self.speaking:
                self.speaking = True
                return [VadEvent("start", here)]
            return []
        if self.speaking and p < self.neg_threshold:
            if self._silence_from is None:
                self._silence_from = here
            if here + WINDOW - self._silence_from >= self.min_silence:
                self.speaking = False
                end = self._silence_from
                self._silence_from = None
                return [VadEvent("end", end)]
        return []
