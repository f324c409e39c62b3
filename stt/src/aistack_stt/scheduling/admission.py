"""Who gets in: the bounded queue, the lane a request takes, and the Retry-After estimate.

Called with the scheduler's lock held: admission, the lane choice and the lanes' queues
change together, or a burst could slip past the limit or into the wrong lane.
"""

from __future__ import annotations

from ..config import SchedulerSettings
from ..errors import QueueFull
from .job import BULK, HOT, Job
from .lanes import Lane
from .stats import SchedulerMetrics


class Admission:
    def __init__(
        self, settings: SchedulerSettings, stats: SchedulerMetrics, *, separate: bool
    ) -> None:
        self.settings = settings
        self.stats = stats
        self.separate = separate
        self.admitted: set[Job] = set()
        # Processing seconds per audio second, smoothed; seeds the Retry-After estimate.
        self.speed = 0.1

    def lane_for(self, seconds: float, lanes: dict[str, Lane]) -> str:
        """The lane of a new request, or QueueFull when the queue is full."""
        lane = HOT if seconds <= self.settings.short_audio_s else BULK
        if len(self.admitted) >= self.settings.max_queue:
            self.stats.outcomes.inc(lane=lane, outcome="refused")
            raise QueueFull(self.retry_after(), self.settings.max_queue)
        if lane == HOT and self._overflow(lanes[HOT], lanes[BULK]):
            return BULK
        return lane

    def _overflow(self, hot: Lane, bulk: Lane) -> bool:
        """A short request may use the bulk lane: the hot one is backed up, the bulk one idle.

        A burst of voice commands would otherwise queue in the hot lane while the bulk
        workers sit idle; they take the overflow as long as no long file is admitted (so a
        command never waits behind one) and their queue is the shorter. Long files are
        always in the bulk lane, so their length alone says whether one is admitted.
        """
        if not self.separate or len(hot.windows) < self.settings.max_batch or bulk.to_split:
            return False
        if any(j.seconds > self.settings.short_audio_s for j in self.admitted):
            return False
        return len(bulk.windows) < len(hot.windows)

    def retry_after(self) -> int:
        """Seconds until a tenth of the admitted audio is decoded at the measured speed.

        A rough figure on purpose: it spreads retries out instead of having every refused
        client come back at the same moment.
        """
        admitted = sum(j.seconds for j in self.admitted)
        return int(min(60, max(1, round(admitted * self.speed / 10))))

    def observe_speed(self, took: float, audio: float, parallel: int) -> None:
        """A batch of `audio` seconds took `took`; `parallel` workers decode side by side."""
        if audio > 0:
            self.speed = 0.8 * self.speed + 0.2 * (took / max(audio, 1.0) / parallel)

    def add(self, job: Job) -> None:
        self.admitted.add(job)
        self.stats.admitted.set(len(self.admitted))

    def release(self, job: Job, outcome: str) -> bool:
        """Forget an admitted job and count its outcome; False when it was already gone."""
        if job not in self.admitted:
            return False
        self.admitted.discard(job)
        self.stats.admitted.set(len(self.admitted))
        self.stats.outcomes.inc(lane=job.lane, outcome=outcome)
        return True
