"""The scheduler: admits requests, runs the lane workers, and hands results back.

How the parts fit (each in its own module of this package):
- `admission.py`: the bounded queue (503 `queue_full` with Retry-After), the lane a request
  takes (hot up to `short_audio_s`, bulk above; a backed-up hot lane overflows into an idle
  bulk lane) and the request's deadline.
- `lanes.py`: each lane's queue of windows and how its workers cut it into batches.
- `replicas.py`: the bulk lane's own model on CPU, one replica per bulk worker, and how many
  workers and threads the machine gets.
- `assembler.py`: one request's window results back in order, each segment delivered
  exactly once, under the assembler's own lock.
- `segments.py`: a decoded window's raw segments → `Segment`s in the request's time.

The hot lane has one worker thread using every core for one batch; the bulk lane has
`bulk_workers` threads over one model with as many replicas, at a lower CPU priority (nice
10): the kernel hands the cores to a voice command the moment one arrives. Batches are
decoded by `batching.BatchDecoder`. Measured in docs/benchmarks.md, "aistack-stt under load".

Locks: `_lock` (with the lanes' conditions on it) guards admission, the lanes' queues and
each job's `cancelled`/`started_at`; each job's ResultAssembler guards its results. A worker
never holds `_lock` while it decodes or delivers.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import threading
import time

from ..audio import duration
from ..batching import BatchDecoder, DecodeOptions, Window, WindowResult, split_windows
from ..config import SchedulerSettings
from ..engine import (
    SegmentCallback,
    TranscriptionRequest,
    TranscriptionResult,
    check_task,
    english_only_error,
)
from ..errors import APIError, QueueFull
from ..metrics import Metrics
from ..models import LoadedModel, ModelManager
from . import backpressure
from .admission import Admission
from .job import BULK, LANES, Job
from .lanes import Lane
from .replicas import BulkReplicas, bulk_layout
from .stats import SchedulerMetrics

log = logging.getLogger("aistack_stt.scheduling")

CLOSE_WAIT_S = 10.0  # how long close() waits for the batches in flight


class Scheduler:
    """The `Transcriber` the server runs (engine.py): lanes, batching, a bounded queue."""

    def __init__(
        self,
        models: ModelManager,
        settings: SchedulerSettings | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.models = models
        self.settings = settings or SchedulerSettings()
        self.metrics = metrics or models.metrics
        self.stats = SchedulerMetrics()
        lanes = self.settings.separate_lanes
        self.separate = lanes == "always" or (lanes == "auto" and models.device == "cpu")
        self._lock = threading.Lock()
        self._lanes = {name: Lane(name, threading.Condition(self._lock)) for name in LANES}
        self._admission = Admission(self.settings, self.stats, separate=self.separate)
        self._ids = itertools.count(1)
        self._stop = False
        self.bulk_workers, self.bulk_threads = bulk_layout(
            self.settings.bulk_workers,
            models.settings.cpu_threads,
            separate=self.separate,
            cpu=models.device == "cpu",
        )
        self._replicas = BulkReplicas(models, self.bulk_workers, self.bulk_threads)
        for lane in self._lanes.values():
            workers = self.bulk_workers if lane.name == BULK else 1
            for n in range(workers):
                name = f"aistack-stt-{lane.name}" + (f"-{n + 1}" if workers > 1 else "")
                thread = threading.Thread(target=self._work, args=(lane,), name=name, daemon=True)
                lane.threads.append(thread)
                thread.start()

    # -- the Transcriber protocol ---------------------------------------------------------

    async def transcribe(
        self, request: TranscriptionRequest, on_segment: SegmentCallback | None = None
    ) -> TranscriptionResult:
        job = self._admit(request, on_segment)
        try:
            return await asyncio.wait_for(
                asyncio.shield(job.future), timeout=self.settings.request_timeout_s
            )
        except TimeoutError:
            self._drop(job, "timeout")
            raise APIError(
                504,
                f"the transcription did not finish within {self.settings.request_timeout_s:g} s "
                "(AISTACK_STT_REQUEST_TIMEOUT_S); send shorter audio or retry later",
                type="server_error",
                code="timeout",
            ) from None
        except asyncio.CancelledError:
            self._drop(job, "cancelled")
            raise

    def close(self) -> None:
        with self._lock:
            self._stop = True
            for lane in self._lanes.values():
                lane.cond.notify_all()
        # A batch in flight cannot be interrupted; the workers are daemon threads, so a
        # stopping server waits a little for it, not for as long as it takes.
        deadline = time.monotonic() + CLOSE_WAIT_S
        for lane in self._lanes.values():
            for thread in lane.threads:
                thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._replicas.clear()

    def health(self) -> dict:
        with self._lock:
            lanes = {
                lane.name: {
                    "queued_windows": len(lane.windows),
                    "waiting_to_split": len(lane.to_split),
                    "batches": lane.batches,
                    "recent_batch_sizes": list(lane.batch_sizes)[-8:],
                }
                for lane in self._lanes.values()
            }
            admitted = len(self._admission.admitted)
            running = sum(1 for j in self._admission.admitted if j.started_at is not None)
        return {
            "admitted": admitted,
            "running": running,
            "waiting": admitted - running,
            "max_queue": self.settings.max_queue,
            "max_batch": self.settings.max_batch,
            "bulk_workers": self.bulk_workers,
            "bulk_threads_per_worker": self.bulk_threads,
            "short_audio_s": self.settings.short_audio_s,
            "separate_lanes": self.separate,
            "seconds_per_audio_second": round(self._admission.speed, 4),
            "lanes": lanes,
        }

    def render_metrics(self) -> str:
        return self.stats.render()

    def backpressure(self) -> str:
        """`normal`, `high` or `critical` (backpressure.py)."""
        with self._lock:
            return backpressure.level(self._admission.admitted, self.settings.max_batch)

    # -- admission ------------------------------------------------------------------------

    def _admit(self, request: TranscriptionRequest, on_segment: SegmentCallback | None) -> Job:
        check_task(request)
        mid = self.models.canonical_id(request.model)
        self.models.resolve(mid)  # an unknown model is a 404 now, not after a wait
        seconds = duration(request.audio)
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._stop:
                raise APIError(503, "the server is shutting down", type="server_error")
            if request.interim and backpressure.interim_refused(
                self._admission.admitted, self.settings.max_batch
            ):
                self.stats.outcomes.inc(lane="hot", outcome="interim_paused")
                raise QueueFull(self._admission.retry_after(), self.settings.max_queue)
            lane = self._admission.lane_for(seconds, self._lanes)
            job = Job(
                id=next(self._ids),
                request=request,
                model_id=mid,
                options=DecodeOptions.for_request(request),
                lane=lane,
                seconds=seconds,
                loop=loop,
                future=loop.create_future(),
                on_segment=on_segment,
                admitted_at=time.monotonic(),
            )
            self._admission.add(job)
            self.metrics.queue_depth.inc()
            target = self._lanes[lane]
            if seconds <= 30:
                # One window, no VAD needed: queue it at once.
                job.cut([Window(request.audio, 0.0, seconds, request.language)], None)
                target.queue([(job, 0)], self.stats)
            else:
                target.to_split.append(job)
            target.cond.notify()
        return job

    def _drop(self, job: Job, outcome: str) -> None:
        """The caller is gone: forget the job; windows still queued are skipped."""
        with self._lock:
            if job.cancelled or job.future.done():
                return
            self._cancel(job)
            self._release(job, outcome)
        log.info("dropped request %d (%s)", job.id, outcome)

    def _cancel(self, job: Job) -> None:
        # Called with the lock held.
        job.cancelled = True
        if job.assembler is not None:
            job.assembler.close()

    def _release(self, job: Job, outcome: str) -> None:
        # Called with the lock held.
        if self._admission.release(job, outcome):
            if job.started_at is None:
                self.metrics.queue_depth.dec()
            else:
                self.metrics.in_progress.dec()

    # -- the lane workers -----------------------------------------------------------------

    def _work(self, lane: Lane) -> None:
        if lane.name == BULK and self.separate and self.settings.bulk_nice:
            # Threads inherit their creator's nice value; CTranslate2's threads for the bulk
            # replica are created from this thread, so they all run at the lower priority.
            with contextlib.suppress(OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.settings.bulk_nice)
        while True:
            with self._lock:
                while not self._stop and not lane.windows and not lane.to_split:
                    lane.cond.wait(timeout=5.0)
                    if not lane.windows and not lane.to_split:
                        self._replicas.forget_unloaded()
                if self._stop:
                    return
                if lane.to_split and len(lane.windows) < self.settings.max_batch:
                    job, batch = lane.to_split.popleft(), None
                else:
                    job = None
                    lane.gather(self.settings, lambda: self._stop)
                    batch = self._take(lane)
                lane.busy += 1
            try:
                if job is not None:
                    self._split(lane, job)
                elif batch:
                    self._run_batch(lane, batch)
            except Exception as exc:  # a failure belongs to the requests in it, not the lane
                if isinstance(exc, APIError):  # e.g. a model that cannot load: said in a line
                    log.warning("%s lane: %s", lane.name, exc.message)
                else:
                    log.exception("%s lane failed", lane.name)
                failed = [job] if job is not None else [item[0] for item in batch or []]
                for j in dict.fromkeys(failed):
                    self._fail(j, exc)
            finally:
                with self._lock:
                    lane.busy -= 1

    def _take(self, lane: Lane) -> list[tuple[Job, int, Window]]:
        # Called with the lock held: the jobs' started_at and the windows' language are read
        # and set here, in one place.
        now = time.monotonic()
        for job in lane.drop_late(now):  # an interim too late to show: its session skips it
            self._cancel(job)
            self._release(job, "interim_late")
            job.post(None, QueueFull(self._admission.retry_after(), self.settings.max_queue))
        batch = lane.take_batch(self.settings.max_batch, self.stats)
        for job, _ in batch:
            if job.started_at is None:
                job.started_at = now
                self.metrics.queue_depth.dec()
                self.metrics.in_progress.inc()
                self.stats.wait.observe(now - job.admitted_at, lane=lane.name)
        return [(job, index, job.window(index)) for job, index in batch]

    def _split(self, lane: Lane, job: Job) -> None:
        if job.cancelled:
            return
        windows, chunks = split_windows(job.request.audio)
        for w in windows:
            w.language = job.request.language
        with self._lock:
            if job.cancelled:
                return
            job.cut(windows, chunks)
            if not windows:  # no speech at all
                self._finish(job)
                return
            lane.queue([(job, i) for i in range(len(windows))], self.stats)

    def _run_batch(self, lane: Lane, batch: list[tuple[Job, int, Window]]) -> None:
        head = batch[0][0]
        started = time.monotonic()
        with self.models.use(head.model_id) as entry:
            self._check_model(entry, batch)
            batch = [item for item in batch if not item[0].cancelled]  # _fail marks them
            if not batch:
                return
            model = entry.model
            if lane.name == BULK and self.separate:
                model = self._replicas.get(entry)
            windows = [window for _, _, window in batch]
            results = BatchDecoder(model).decode(windows, head.options)
        took = time.monotonic() - started
        # Bulk workers decode side by side: the lane's speed is theirs together.
        parallel = self.bulk_workers if lane.name == BULK else 1
        self.stats.batch_size.observe(len(batch), lane=lane.name)
        self.stats.batch_seconds.observe(took, lane=lane.name)
        with self._lock:
            self._admission.observe_speed(took, sum(w.duration for w in windows), parallel)
            lane.batches += 1
            lane.batch_sizes.append(len(batch))
        for (job, index, _), result in zip(batch, results, strict=True):
            self._deliver(job, index, result)

    def _check_model(self, entry: LoadedModel, batch: list[tuple[Job, int, Window]]) -> None:
        if entry.multilingual:
            return
        for job, _, _ in batch:
            error = english_only_error(entry.id, job.request)
            if error is not None:
                self._fail(job, error)

    def _deliver(self, job: Job, index: int, result: WindowResult) -> None:
        assert job.assembler is not None  # windows are queued only after the cut
        if job.assembler.add(index, result):  # True once: this window completed the request
            with self._lock:
                self._finish(job)

    def _finish(self, job: Job) -> None:
        # Called with the lock held.
        if job.cancelled:
            return
        first = job.assembler.first if job.assembler is not None else None
        result = TranscriptionResult(
            model=job.model_id,
            task=job.request.task,
            language=first.language if first else (job.request.language or "en"),
            language_probability=first.language_probability if first else 0.0,
            duration=job.seconds,
            segments=job.assembler.segments() if job.assembler is not None else [],
            processing_seconds=time.monotonic() - (job.started_at or job.admitted_at),
        )
        self._release(job, "ok")
        self.metrics.audio_seconds.inc(job.seconds)
        if job.seconds > 0:
            self.metrics.rtf.observe(result.processing_seconds / job.seconds)
        job.post(result, None)

    def _fail(self, job: Job, exc: BaseException) -> None:
        with self._lock:
            if job.future.done() or job.cancelled:
                return
            self._cancel(job)  # skip its remaining windows
            self._release(job, "error")
        if not isinstance(exc, APIError):
            exc = APIError(
                500,
                f"transcription failed: {type(exc).__name__}: {exc}",
                type="server_error",
            )
        job.post(None, exc)
