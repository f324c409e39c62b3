"""Where a stream's decode time went, sent back as the call's trailing metadata.

Per decode (partials and finals alike), summed over the stream:
- buffer wait: from the newest audio the decode includes arriving to the decode being asked
  for (the session waits for VAD or for the partial interval);
- queue wait: in the scheduler's queue, until a worker started on it;
- inference: the model's work;
- response emit: from the session's result to gRPC taking the message.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

from ..engine import TranscriptionRequest, TranscriptionResult
from ..live.session import Transcribe

PREFIX = "stt-decode-"


@dataclass
class DecodeTimings:
    buffer_wait: float = 0.0
    queue_wait: float = 0.0
    inference: float = 0.0
    response_emit: float = 0.0
    count: int = 0
    last_audio_at: float = 0.0  # monotonic time the latest audio chunk arrived

    def audio_arrived(self) -> None:
        self.last_audio_at = time.monotonic()

    def measure(self, transcribe: Transcribe) -> Transcribe:
        """`transcribe`, timed into this record."""

        @functools.wraps(transcribe)  # keeps what the session reads off it (`capture`)
        async def timed(request: TranscriptionRequest) -> TranscriptionResult:
            asked = time.monotonic()
            if self.last_audio_at:
                self.buffer_wait += max(0.0, asked - self.last_audio_at)
            result = await transcribe(request)
            took = time.monotonic() - asked
            inference = min(result.processing_seconds, took)
            self.inference += inference
            self.queue_wait += took - inference
            self.count += 1
            return result

        return timed

    def emitted(self, since: float) -> None:
        self.response_emit += max(0.0, time.monotonic() - since)

    @property
    def total(self) -> float:
        return self.buffer_wait + self.queue_wait + self.inference + self.response_emit

    def metadata(self) -> tuple[tuple[str, str], ...]:
        values = {
            "buffer-wait-sec": self.buffer_wait,
            "queue-wait-sec": self.queue_wait,
            "inference-sec": self.inference,
            "response-emit-sec": self.response_emit,
            "total-sec": self.total,
        }
        pairs = tuple((PREFIX + name, f"{value:.6f}") for name, value in values.items())
        return (*pairs, ("stt-decode-count", str(self.count)))
