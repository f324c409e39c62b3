"""A lane's queue of windows and how its workers cut it into batches.

Every method here is called with the scheduler's lock held (`Lane.cond` is a condition on
that lock): the queue, the busy count and the timestamps are scheduler state.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

from ..config import SchedulerSettings
from .job import BULK, Job
from .stats import SchedulerMetrics


@dataclass(eq=False)
class Lane:
    name: str
    cond: threading.Condition
    windows: deque = field(default_factory=deque)  # (job, index)
    to_split: deque = field(default_factory=deque)  # jobs whose audio is not cut yet
    threads: list[threading.Thread] = field(default_factory=list)
    busy: int = 0  # workers splitting or decoding now
    first_queued: float = 0.0  # when the queue last went from empty to not empty
    last_queued: float = 0.0  # when a window was last queued
    batches: int = 0
    batch_sizes: deque = field(default_factory=lambda: deque(maxlen=64))

    def idle(self) -> int:
        """Workers not splitting or decoding now, the caller included."""
        return max(1, len(self.threads) - self.busy)

    def queue(self, windows: list[tuple[Job, int]], stats: SchedulerMetrics) -> None:
        now = time.monotonic()
        if not self.windows:
            self.first_queued = now
        self.last_queued = now
        if windows and not windows[0][0].request.interim and self.windows:
            # Finals (and every other request) go ahead of live interims: the user waits on
            # them, while an interim only shows the words so far (backpressure.py).
            interims = [w for w in self.windows if w[0].request.interim]
            if interims:
                self.windows = deque(w for w in self.windows if not w[0].request.interim)
                self.windows.extend(windows)
                self.windows.extend(interims)
            else:
                self.windows.extend(windows)
        else:
            self.windows.extend(windows)
        stats.queued[self.name].set(len(self.windows))
        self.cond.notify_all()

    def drop_late(self, now: float) -> list[Job]:
        """Take out the interims that were not started by their `start_by` (engine.py)."""
        late = [
            job
            for job, _ in self.windows
            if job.request.interim
            and job.request.start_by is not None
            and job.started_at is None
            and job.request.start_by < now
            and not job.cancelled
        ]
        if late:
            gone = set(late)
            self.windows = deque(w for w in self.windows if w[0] not in gone)
        return list(dict.fromkeys(late))

    def take_batch(self, max_batch: int, stats: SchedulerMetrics) -> list[tuple[Job, int]]:
        """The FIFO head decides the model and options; other windows join if they match.

        The queue is shared with the lane's idle workers (this one included), so that two
        windows and two idle workers make two batches side by side, not one. The windows of
        one long file may so be decoded by several workers at once; their results meet again
        in the job's ResultAssembler.
        """
        while self.windows and self.windows[0][0].cancelled:
            self.windows.popleft()
        if not self.windows:
            return []
        head = self.windows[0][0]
        key = (head.model_id, head.options)
        limit = min(max_batch, -(-len(self.windows) // self.idle()))
        batch, rest = [], deque()
        while self.windows:
            job, index = self.windows.popleft()
            if job.cancelled:
                continue
            if len(batch) < limit and (job.model_id, job.options) == key:
                batch.append((job, index))
            else:
                rest.append((job, index))
        self.windows = rest
        stats.queued[self.name].set(len(rest))
        return batch

    def gather(self, settings: SchedulerSettings, stopped) -> None:
        """Bulk lane: let a burst finish arriving before cutting it into batches.

        Requests of a burst reach the lane one by one as their uploads are read; a worker
        that started on the first at once would decode it alone, the costliest way per
        window. So while windows keep arriving (one at least every `batch_wait_s` / 5) and
        there are fewer than a full batch per idle worker, wait, at most `batch_wait_s` from
        the first. A lone long file waits `batch_wait_s` / 5 (50 ms by default).
        """
        cap = settings.batch_wait_s
        if self.name != BULK or cap <= 0:
            return
        quiet = cap / 5
        while not stopped() and self.windows:
            if len(self.windows) >= settings.max_batch * self.idle():
                return
            now = time.monotonic()
            left = min(self.first_queued + cap, self.last_queued + quiet) - now
            if left <= 0:
                return
            self.cond.wait(timeout=left)
