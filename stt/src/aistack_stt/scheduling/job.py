"""One admitted request as the scheduler tracks it."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from ..batching import Window
from ..engine import SegmentCallback, TranscriptionRequest, TranscriptionResult
from .assembler import ResultAssembler

HOT, BULK = "hot", "bulk"
LANES = (HOT, BULK)


@dataclass(eq=False)
class Job:
    """Fields below `admitted_at` change under the scheduler's lock only; the results of its
    windows belong to `assembler`, which has its own."""

    id: int
    request: TranscriptionRequest
    model_id: str
    options: object  # batching.DecodeOptions: the batch key
    lane: str
    seconds: float
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    on_segment: SegmentCallback | None
    admitted_at: float
    windows: list[Window] = field(default_factory=list)
    assembler: ResultAssembler | None = None
    started_at: float | None = None
    cancelled: bool = False

    def cut(self, windows: list[Window], chunks: list[dict] | None) -> None:
        """The request's audio is cut into windows: results can now be assembled."""
        self.windows = windows
        self.assembler = ResultAssembler(
            len(windows), chunks, self.on_segment, pin_language=self.request.language is None
        )

    def window(self, index: int) -> Window:
        """Window `index` as it should be decoded: in the language the first one found."""
        window = self.windows[index]
        pinned = self.assembler.language if self.assembler is not None else None
        if window.language is None and pinned is not None:
            return Window(window.audio, window.offset, window.duration, pinned)
        return window

    def post(self, result: TranscriptionResult | None, exc: BaseException | None) -> None:
        """Hand the outcome to the request's event loop (gone at shutdown: nobody waits)."""
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(_resolve, self.future, result, exc)


def _resolve(future: asyncio.Future, result, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
