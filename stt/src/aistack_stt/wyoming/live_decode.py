"""Decode while the user speaks: the final transcription of a Wyoming request, started when
the server's own VAD hears the speech end, before the client's `audio-stop`.

A satellite (or Home Assistant) streams audio until its own VAD has heard some silence,
then sends `audio-stop`; decoding only then leaves the user waiting for all of Whisper's
time. Here each request's audio (16 kHz mono, as it arrives) also goes through Silero VAD
(live/vad.py, the live sessions' streaming VAD); when it hears `vad_silence_ms` of silence
after speech, the request's audio so far (plus 0.3 s, as the live sessions pad) is sent to
the engine at once. At `audio-stop`:

- only silence followed (VAD heard no new speech): that decode is the answer, already done
  or under way;
- speech came back, or VAD never heard the speech end: the whole audio is decoded, as
  before (an early decode made stale by new speech is cancelled when that speech starts).

With `endpoint_s` the server also ends the request itself after that much silence after
speech, without waiting for `audio-stop` (what wyoming-faster-whisper's `--vad-endpointing`
does): the handler sends the transcript, then drops the request's remaining audio.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine

import numpy as np

from ..engine import TranscriptionResult
from ..live.vad import WINDOW, StreamingVad, VadEvent

SAMPLE_RATE = 16000
PAD_S = 0.3  # audio kept after VAD's end, as the live sessions and get_speech_timestamps do
BATCH = WINDOW  # VAD judges each 32 ms as soon as it is complete
Decode = Callable[[np.ndarray], Coroutine[None, None, TranscriptionResult]]


class EarlyDecode:
    """One request's VAD and its early decode. Fed by one connection, in order."""

    def __init__(
        self, decode: Decode, silence_ms: int, endpoint_s: float = 0.0, request: object = None
    ) -> None:
        self.decode = decode
        self.request = request  # what the client asked for at audio-start (name, language)
        self.vad = StreamingVad(0.5, silence_ms)
        self.endpoint_samples = int(endpoint_s * SAMPLE_RATE)
        self.received = 0
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._ended_at: int | None = None  # where VAD last heard the speech end
        self.task: asyncio.Task[TranscriptionResult] | None = None
        # VAD runs beside the connection's reading, never holding it up: on a busy machine it
        # falls behind and catches up with everything pending in one call.
        self._vad: asyncio.Task[None] | None = None
        self._so_far: Callable[[], np.ndarray] = lambda: np.zeros(0, dtype=np.float32)

    async def feed(self, samples: np.ndarray, so_far: Callable[[], np.ndarray]) -> None:
        """New 16 kHz samples; `so_far` gives every sample of the request received yet."""
        if not samples.size:
            return
        self.received += samples.size
        self._pending.append(samples)
        self._pending_samples += samples.size
        self._so_far = so_far
        if self._pending_samples < BATCH:
            return
        if self.endpoint_samples:
            # The server ends requests itself: judge before the next chunk is read, so the
            # handler's endpoint check after each chunk sees the silence so far.
            if self._vad is not None:
                await self._vad
            self._apply(await self._judge(), so_far)
        elif self._vad is None or self._vad.done():
            self._vad = asyncio.ensure_future(self._catch_up())

    async def _catch_up(self) -> None:
        while self._pending_samples >= BATCH:
            self._apply(await self._judge(), self._so_far)

    async def _judge(self) -> list[VadEvent]:
        if not self._pending:
            return []
        audio = np.concatenate(self._pending)
        self._pending, self._pending_samples = [], 0
        # Silero is CPU work: a worker thread, not the event loop.
        return await asyncio.to_thread(self.vad.feed, audio)

    def _apply(self, events: list[VadEvent], so_far: Callable[[], np.ndarray]) -> None:
        for event in events:
            if event.kind == "start":
                self._ended_at = None
                self.cancel()  # speech again: what was decoded is no longer the whole request
            elif event.kind == "end":
                self._ended_at = event.sample
                self.cancel()
                end = min(event.sample + int(PAD_S * SAMPLE_RATE), self.received)
                self.task = asyncio.ensure_future(self.decode(so_far()[:end]))

    def endpoint_reached(self) -> bool:
        """`endpoint_s` of silence followed the speech, and its decode is under way."""
        return (
            self.endpoint_samples > 0
            and self.task is not None
            and self._ended_at is not None
            and not self.vad.speaking
            and self.received - self._ended_at >= self.endpoint_samples
        )

    async def reusable(self) -> asyncio.Task[TranscriptionResult] | None:
        """At audio-stop: the early decode when only silence followed it, else None."""
        if self._vad is not None:
            try:
                await self._vad
            except Exception:  # VAD failed: decode the whole request, as without it
                self.cancel()
                return None
        for event in await self._judge():
            if event.kind == "start":
                self._ended_at = None
                self.cancel()
        if self.task is None or self.vad.speaking:
            self.cancel()
            return None
        task, self.task = self.task, None
        return task

    def close(self) -> None:
        """The request or the connection ends: stop VAD and any decode."""
        if self._vad is not None:
            self._vad.cancel()
            self._vad.add_done_callback(_swallow)
        self.cancel()

    def cancel(self) -> None:
        if self.task is not None:
            task, self.task = self.task, None
            task.cancel()
            # Retrieve its outcome so a failure of a stale decode is never reported.
            task.add_done_callback(_swallow)


def _swallow(task: asyncio.Task) -> None:
    with contextlib.suppress(BaseException):
        task.result()
