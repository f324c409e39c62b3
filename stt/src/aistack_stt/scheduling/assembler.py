"""One request's window results → its segments, in order, each delivered exactly once.

The windows of one long file may be decoded by several bulk workers at once, and each worker
hands its results over from its own thread, in whatever order the batches finish. The
assembler alone owns what has arrived, what has been emitted and the language pinned from
the first window; every change happens under its own lock, and `on_segment` is called under
that lock too, so segments reach the caller in order even when two workers deliver at the
same moment. (`on_segment` must therefore be quick and must not block: the HTTP layer's
hands the segment to the event loop with `call_soon_threadsafe`.)

Before this class existed the scheduler changed these fields from the workers without a
lock, and two workers delivering windows of one file could emit a segment twice, skip one,
or never finish (tests/test_assembler.py shows each interleaving).
"""

from __future__ import annotations

import threading

from faster_whisper.vad import SpeechTimestampsMap

from ..batching import SAMPLE_RATE, WindowResult
from ..engine import Segment, SegmentCallback
from .segments import to_segment


class ResultAssembler:
    def __init__(
        self,
        windows: int,
        chunks: list[dict] | None = None,
        on_segment: SegmentCallback | None = None,
        *,
        pin_language: bool = False,
    ) -> None:
        self._lock = threading.Lock()
        self._count = windows
        self._ts_map = SpeechTimestampsMap(chunks, SAMPLE_RATE) if chunks else None
        self._on_segment = on_segment
        self._pin = pin_language  # no language asked for: the first window's detection holds
        self._arrived: dict[int, WindowResult] = {}
        self._next = 0  # the first window whose segments are not emitted yet
        self._segments: list[Segment] = []
        self._first: WindowResult | None = None
        self._closed = False

    def add(self, index: int, result: WindowResult) -> bool:
        """Take one window's result; True for exactly one call: the one that completes it.

        A window delivered twice, out of range, or after `close()` is ignored (False).
        """
        with self._lock:
            if self._closed or not 0 <= index < self._count:
                return False
            if index < self._next or index in self._arrived:
                return False
            self._arrived[index] = result
            if index == 0:
                self._first = result
            while self._next in self._arrived:
                for raw in self._arrived.pop(self._next).segments:
                    segment = to_segment(len(self._segments), raw, self._ts_map)
                    self._segments.append(segment)
                    if self._on_segment is not None:
                        self._on_segment(segment)
                self._next += 1
            if self._next == self._count:
                self._closed = True
                return True
            return False

    def close(self) -> None:
        """The request is over (failed, cancelled): later windows are ignored."""
        with self._lock:
            self._closed = True

    @property
    def language(self) -> str | None:
        """The language later windows should be decoded in, once the first is known."""
        with self._lock:
            if self._pin and self._first is not None:
                return self._first.language
            return None

    @property
    def first(self) -> WindowResult | None:
        with self._lock:
            return self._first

    def segments(self) -> list[Segment]:
        with self._lock:
            return list(self._segments)
