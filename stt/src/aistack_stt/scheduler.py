"""Scheduling transcriptions under load: two lanes, cross-request batching, a bounded queue.

`Scheduler` is a drop-in for `Engine` (same `transcribe(request, on_segment)` coroutine).

- Lanes. Audio of at most `short_audio_s` (a voice command, a streaming utterance) goes to
  the hot lane; anything longer to the bulk lane. On CPU each lane has its own CTranslate2
  model. The hot lane has one worker thread using every core for one batch. The bulk lane
  has `bulk_workers` worker threads (by default one per core, up to 4) over one model with as
  many replicas, each replica using its share of the cores: the decoder's per-token steps are
  too small to keep several cores busy, so independent batches side by side get more done
  than one batch spread over all cores (docs/benchmarks.md). The bulk model is created by a
  thread running at a lower priority (nice 10), and the threads CTranslate2 starts for it
  inherit that, so the kernel hands the cores to a voice command the moment one arrives and
  gives them back to the long files when it is done. No request waits behind a long file,
  and an idle hot lane costs the bulk lane nothing. A burst of short requests that backs up
  the hot lane overflows into the bulk lane while no long file is admitted. (Measured here:
  see docs/benchmarks.md, "aistack-stt under load".)
- Batching. A request is cut into ≤30 s windows (batching.py). A lane's worker takes up to
  `max_batch` windows sharing decoding options, from any requests, and decodes them in one
  CTranslate2 call. While a batch runs, new work queues up, so batches grow with load.
- Backpressure. At most `max_queue` requests are admitted (waiting or running); the next one
  gets `QueueFull` at once (503 with Retry-After, estimated from the audio already queued and
  the measured speed). Each request has a deadline (`request_timeout_s`); a request whose
  caller gave up (timeout, cancellation, client disconnect) has its remaining windows dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from faster_whisper import WhisperModel
from faster_whisper.vad import SpeechTimestampsMap

from .audio import duration
from .batching import (
    FALLBACK_TEMPERATURES,
    SAMPLE_RATE,
    BatchDecoder,
    DecodeOptions,
    Window,
    WindowResult,
    split_windows,
)
from .config import ConfigError
from .engine import TASKS, Segment, SegmentCallback, TranscriptionRequest, TranscriptionResult, Word
from .errors import APIError
from .metrics import Counter, Gauge, Histogram, Metrics
from .models import ModelManager

log = logging.getLogger("aistack_stt.scheduler")

HOT, BULK = "hot", "bulk"
LANES = (HOT, BULK)
T = TypeVar("T")


@dataclass(frozen=True)
class SchedulerSettings:
    """Tuning knobs; every one is also an AISTACK_STT_* variable (see `from_env`)."""

    short_audio_s: float = 15.0  # at most this long: hot lane
    max_batch: int = 4  # windows per CTranslate2 call (bench/stt_batching.py: 8 was slower)
    max_queue: int = 512  # requests admitted (waiting + running) before refusing
    request_timeout_s: float = 900.0
    bulk_nice: int = 10  # CPU priority of the bulk lane; 0 shares the cores evenly
    bulk_workers: int = 0  # batches decoded side by side in the bulk lane; 0: automatic
    batch_wait_s: float = 0.25  # bulk lane: longest wait for a burst to finish arriving
    separate_lanes: str = "auto"  # auto: own bulk replica on CPU only | always | never

    def __post_init__(self) -> None:
        if self.short_audio_s < 0:
            raise ConfigError(f"short_audio_s {self.short_audio_s} is invalid; use seconds >= 0")
        if self.max_batch < 1:
            raise ConfigError(f"max_batch {self.max_batch} is invalid; use 1 or more")
        if self.max_queue < 1:
            raise ConfigError(f"max_queue {self.max_queue} is invalid; use 1 or more")
        if self.request_timeout_s <= 0:
            raise ConfigError(
                f"request_timeout_s {self.request_timeout_s} is invalid; use seconds > 0"
            )
        if not 0 <= self.bulk_nice <= 19:
            raise ConfigError(f"bulk_nice {self.bulk_nice} is invalid; use 0-19")
        if not 0 <= self.batch_wait_s <= 10:
            raise ConfigError(f"batch_wait_s {self.batch_wait_s} is invalid; use 0-10 seconds")
        if self.bulk_workers < 0:
            raise ConfigError(
                f"bulk_workers {self.bulk_workers} is invalid; use 0 (automatic) or more"
            )
        if self.separate_lanes not in ("auto", "always", "never"):
            raise ConfigError(
                f"separate_lanes {self.separate_lanes!r} is not one of auto, always, never"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SchedulerSettings:
        environ = os.environ if environ is None else environ
        kinds = {
            "short_audio_s": float,
            "max_batch": int,
            "max_queue": int,
            "request_timeout_s": float,
            "bulk_nice": int,
            "bulk_workers": int,
            "batch_wait_s": float,
            "separate_lanes": str,
        }
        values: dict[str, object] = {}
        for name, kind in kinds.items():
            env = "AISTACK_STT_" + name.upper()
            raw = environ.get(env)
            if raw is None or raw == "":
                continue
            try:
                values[name] = kind(raw.strip())
            except ValueError:
                raise ConfigError(f"{env}={raw!r} is not a number") from None
        return cls(**values)  # type: ignore[arg-type]


class QueueFull(APIError):
    """Too many requests admitted: refuse now rather than let timeouts pile up."""

    def __init__(self, retry_after: int, limit: int) -> None:
        super().__init__(
            503,
            f"the server is busy: {limit} transcriptions are already queued or running "
            f"(AISTACK_STT_MAX_QUEUE); retry in {retry_after} s",
            type="server_error",
            code="queue_full",
        )
        self.retry_after = retry_after


@dataclass(eq=False)
class _Job:
    id: int
    request: TranscriptionRequest
    model_id: str
    options: DecodeOptions
    lane: str
    seconds: float
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    on_segment: SegmentCallback | None
    admitted_at: float
    windows: list[Window] = field(default_factory=list)
    chunks: list[dict] | None = None
    results: dict[int, WindowResult] = field(default_factory=dict)
    emitted: list[Segment] = field(default_factory=list)
    next_window: int = 0
    started_at: float | None = None
    cancelled: bool = False


@dataclass(eq=False)
class _Lane:
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


class _SchedulerMetrics:
    def __init__(self) -> None:
        p = "aistack_stt_scheduler_"
        self.queued = {
            lane: Gauge(p + f"{lane}_queued_windows", f"Windows waiting in the {lane} lane.")
            for lane in LANES
        }
        self.admitted = Gauge(p + "admitted_requests", "Requests waiting or running now.")
        self.outcomes = Counter(p + "requests_total", "Requests by lane and outcome.")
        self.batch_size = Histogram(
            p + "batch_size", "Windows per CTranslate2 call, by lane.", (1, 2, 4, 8, 16, 32)
        )
        self.wait = Histogram(
            p + "queue_wait_seconds",
            "Time from admission to the first window being decoded, by lane.",
            (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300),
        )
        self.batch_seconds = Histogram(
            p + "batch_seconds",
            "Time one batch takes to decode, by lane.",
            (0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
        )

    def render(self) -> str:
        lines: list[str] = []
        for metric in (
            *self.queued.values(),
            self.admitted,
            self.outcomes,
            self.batch_size,
            self.wait,
            self.batch_seconds,
        ):
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"


class Scheduler:
    def __init__(
        self,
        models: ModelManager,
        settings: SchedulerSettings | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.models = models
        self.settings = settings or SchedulerSettings()
        self.metrics = metrics or models.metrics
        self.stats = _SchedulerMetrics()
        lanes = self.settings.separate_lanes
        self.separate = lanes == "always" or (lanes == "auto" and models.device == "cpu")
        self._lock = threading.Lock()
        self._lanes = {name: _Lane(name, threading.Condition(self._lock)) for name in LANES}
        self._admitted: set[_Job] = set()
        self._ids = itertools.count(1)
        self._stop = False
        self._replicas: dict[str, tuple[str, WhisperModel]] = {}  # bulk lane: id -> (src, model)
        self._replica_lock = threading.Lock()  # one bulk worker builds a replica, others wait
        self.bulk_workers, self.bulk_threads = bulk_layout(
            self.settings.bulk_workers,
            models.settings.cpu_threads,
            separate=self.separate,
            cpu=models.device == "cpu",
        )
        # Processing seconds per audio second, smoothed; seeds the Retry-After estimate.
        self._speed = 0.1
        for lane in self._lanes.values():
            workers = self.bulk_workers if lane.name == BULK else 1
            for n in range(workers):
                name = f"aistack-stt-{lane.name}" + (f"-{n + 1}" if workers > 1 else "")
                thread = threading.Thread(target=self._work, args=(lane,), name=name, daemon=True)
                lane.threads.append(thread)
                thread.start()

    # -- the Engine interface -------------------------------------------------------------

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
        for lane in self._lanes.values():
            for thread in lane.threads:
                thread.join(timeout=120)  # a batch in flight cannot be interrupted
        self._replicas.clear()

    # -- what /health and /metrics show ---------------------------------------------------

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
            admitted = len(self._admitted)
            running = sum(1 for j in self._admitted if j.started_at is not None)
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
            "seconds_per_audio_second": round(self._speed, 4),
            "lanes": lanes,
        }

    def render_metrics(self) -> str:
        return self.stats.render()

    # -- admission ------------------------------------------------------------------------

    def _admit(self, request: TranscriptionRequest, on_segment: SegmentCallback | None) -> _Job:
        if request.task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, not {request.task!r}")
        mid = self.models.canonical_id(request.model)
        self.models.resolve(mid)  # an unknown model is a 404 now, not after a wait
        seconds = duration(request.audio)
        lane = HOT if seconds <= self.settings.short_audio_s else BULK
        temps = (float(request.temperature),) if request.temperature else FALLBACK_TEMPERATURES
        options = DecodeOptions(
            task=request.task,
            beam_size=request.beam_size,
            temperatures=temps,
            prompt=request.prompt or None,
            word_timestamps=request.word_timestamps,
            silence=request.silence,
        )
        loop = asyncio.get_running_loop()
        with self._lock:
            if self._stop:
                raise APIError(503, "the server is shutting down", type="server_error")
            if len(self._admitted) >= self.settings.max_queue:
                self.stats.outcomes.inc(lane=lane, outcome="refused")
                raise QueueFull(self._retry_after(), self.settings.max_queue)
            if lane == HOT and self._overflow():
                lane = BULK
            job = _Job(
                id=next(self._ids),
                request=request,
                model_id=mid,
                options=options,
                lane=lane,
                seconds=seconds,
                loop=loop,
                future=loop.create_future(),
                on_segment=on_segment,
                admitted_at=time.monotonic(),
            )
            self._admitted.add(job)
            self.stats.admitted.set(len(self._admitted))
            self.metrics.queue_depth.inc()
            target = self._lanes[lane]
            if seconds <= 30:
                # One window, no VAD needed: queue it at once.
                job.windows = [Window(request.audio, 0.0, seconds, request.language)]
                self._queue(target, [(job, 0)])
            else:
                target.to_split.append(job)
            target.cond.notify()
        return job

    def _overflow(self) -> bool:
        """A short request may use the bulk lane: the hot one is backed up, the bulk one idle.

        Called with the lock held. A burst of voice commands would otherwise queue in the hot
        lane while the bulk workers sit idle; they take the overflow as long as no long file
        is admitted (so a command never waits behind one) and their queue is the shorter.
        """
        hot, bulk = self._lanes[HOT], self._lanes[BULK]
        if not self.separate or len(hot.windows) < self.settings.max_batch or bulk.to_split:
            return False
        if any(j.seconds > self.settings.short_audio_s for j in self._admitted):
            return False
        return len(bulk.windows) < len(hot.windows)

    def _retry_after(self) -> int:
        """Seconds until a tenth of the admitted audio is decoded at the measured speed.

        A rough figure on purpose: it spreads retries out instead of having every refused
        client come back at the same moment.
        """
        admitted = sum(j.seconds for j in self._admitted)
        return int(min(60, max(1, round(admitted * self._speed / 10))))

    def _drop(self, job: _Job, outcome: str) -> None:
        """The caller is gone: forget the job; windows still queued are skipped."""
        with self._lock:
            if job.cancelled or job.future.done():
                return
            job.cancelled = True
            self._release(job, outcome)
        log.info("dropped request %d (%s)", job.id, outcome)

    def _release(self, job: _Job, outcome: str) -> None:
        # Called with the lock held.
        if job in self._admitted:
            self._admitted.discard(job)
            self.stats.admitted.set(len(self._admitted))
            self.stats.outcomes.inc(lane=job.lane, outcome=outcome)
            if job.started_at is None:
                self.metrics.queue_depth.dec()
            else:
                self.metrics.in_progress.dec()

    # -- the lane workers -----------------------------------------------------------------

    def _work(self, lane: _Lane) -> None:
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
                        self._forget_unloaded_replicas()
                if self._stop:
                    return
                if lane.to_split and len(lane.windows) < self.settings.max_batch:
                    job = lane.to_split.popleft()
                    batch = None
                else:
                    job = None
                    self._gather(lane)
                    batch = self._take_batch(lane)
                lane.busy += 1
            try:
                if job is not None:
                    self._split(lane, job)
                elif batch:
                    self._run_batch(lane, batch)
            except Exception as exc:  # a failure belongs to the requests in it, not the lane
                log.exception("%s lane failed", lane.name)
                failed = [job] if job is not None else [j for j, _ in batch or []]
                for j in dict.fromkeys(failed):
                    self._fail(j, exc)
            finally:
                with self._lock:
                    lane.busy -= 1

    def _take_batch(self, lane: _Lane) -> list[tuple[_Job, int]]:
        # Called with the lock held. FIFO head decides the options; others join if they match.
        while lane.windows and lane.windows[0][0].cancelled:
            lane.windows.popleft()
        if not lane.windows:
            return []
        head = lane.windows[0][0]
        key = (head.model_id, head.options)
        # Share the queue with the lane's idle workers (this one included), so that two
        # windows and two idle workers make two batches side by side, not one.
        limit = min(self.settings.max_batch, -(-len(lane.windows) // _idle(lane)))
        batch, rest = [], deque()
        while lane.windows:
            job, index = lane.windows.popleft()
            if job.cancelled:
                continue
            if len(batch) < limit and (job.model_id, job.options) == key:
                batch.append((job, index))
            else:
                rest.append((job, index))
        lane.windows = rest
        self.stats.queued[lane.name].set(len(rest))
        now = time.monotonic()
        for job, _ in batch:
            if job.started_at is None:
                job.started_at = now
                self.metrics.queue_depth.dec()
                self.metrics.in_progress.inc()
                self.stats.wait.observe(now - job.admitted_at, lane=lane.name)
        return batch

    def _queue(self, lane: _Lane, windows: list[tuple[_Job, int]]) -> None:
        # Called with the lock held.
        now = time.monotonic()
        if not lane.windows:
            lane.first_queued = now
        lane.last_queued = now
        lane.windows.extend(windows)
        self.stats.queued[lane.name].set(len(lane.windows))
        lane.cond.notify_all()

    def _gather(self, lane: _Lane) -> None:
        """Bulk lane: let a burst finish arriving before cutting it into batches.

        Called with the lock held and windows queued. Requests of a burst reach the lane one
        by one as their uploads are read; a worker that started on the first at once would
        decode it alone, the costliest way per window. So while windows keep arriving (one at
        least every `batch_wait_s` / 5) and there are fewer than a full batch per idle
        worker, wait, at most `batch_wait_s` from the first. A lone long file waits
        `batch_wait_s` / 5 (50 ms by default).
        """
        cap = self.settings.batch_wait_s
        if lane.name != BULK or cap <= 0:
            return
        quiet = cap / 5
        while not self._stop and lane.windows:
            if len(lane.windows) >= self.settings.max_batch * _idle(lane):
                return
            now = time.monotonic()
            left = min(lane.first_queued + cap, lane.last_queued + quiet) - now
            if left <= 0:
                return
            lane.cond.wait(timeout=left)

    def _split(self, lane: _Lane, job: _Job) -> None:
        if job.cancelled:
            return
        windows, chunks = split_windows(job.request.audio)
        for w in windows:
            w.language = job.request.language
        with self._lock:
            job.windows, job.chunks = windows, chunks
            if not windows:  # no speech at all
                self._finish(job)
                return
            self._queue(lane, [(job, i) for i in range(len(windows))])

    def _replica(self, model_id: str, source: str, shared: WhisperModel) -> WhisperModel:
        """The bulk lane's own model, loaded from a (low-priority) bulk worker thread.

        It has one CTranslate2 replica per bulk worker (they share the weights), so each
        worker's batch runs on its own replica with its own share of the cores.
        """
        with self._replica_lock:
            held = self._replicas.get(model_id)
            if held is not None and held[0] == source:
                return held[1]
            model = WhisperModel(
                source,
                device=self.models.device,
                compute_type=self.models.compute_type,
                cpu_threads=self.bulk_threads,
                num_workers=self.bulk_workers,
            )
            self._replicas[model_id] = (source, model)
        log.info(
            "bulk lane model %s loaded: %d replica(s), %d thread(s) each",
            model_id,
            self.bulk_workers,
            self.bulk_threads,
        )
        return model

    def _forget_unloaded_replicas(self) -> None:
        # Called with the scheduler lock held: never wait here for a model being loaded.
        if not self._replica_lock.acquire(blocking=False):
            return
        try:
            for mid in list(self._replicas):
                if not self.models.is_loaded(mid):
                    del self._replicas[mid]
        finally:
            self._replica_lock.release()

    def _run_batch(self, lane: _Lane, batch: list[tuple[_Job, int]]) -> None:
        head = batch[0][0]
        started = time.monotonic()
        with self.models.use(head.model_id) as entry:
            self._check_model(entry, batch)
            batch = [(j, i) for j, i in batch if not j.cancelled]  # _fail marks them
            if not batch:
                return
            model = entry.model
            if lane.name == BULK and self.separate:
                model = self._replica(head.model_id, entry.source, entry.model)
            decoder = BatchDecoder(model)
            windows = [job.windows[i] for job, i in batch]
            results = decoder.decode(windows, head.options)
        took = time.monotonic() - started
        audio = sum(w.duration for w in windows)
        if audio > 0:
            # Bulk workers decode side by side: the lane's speed is theirs together.
            parallel = self.bulk_workers if lane.name == BULK else 1
            self._speed = 0.8 * self._speed + 0.2 * (took / max(audio, 1.0) / parallel)
        self.stats.batch_size.observe(len(batch), lane=lane.name)
        self.stats.batch_seconds.observe(took, lane=lane.name)
        with self._lock:
            lane.batches += 1
            lane.batch_sizes.append(len(batch))
        for (job, index), result in zip(batch, results, strict=True):
            self._deliver(job, index, result)

    def _check_model(self, entry, batch: list[tuple[_Job, int]]) -> None:
        if entry.multilingual:
            return
        for job, _ in batch:
            req = job.request
            error = None
            if req.task == "translate":
                error = APIError(
                    400,
                    f"model {entry.id!r} is English-only and cannot translate; use a "
                    "multilingual model (e.g. base, small, large-v3)",
                    param="model",
                    code="invalid_value",
                )
            elif req.language not in (None, "en"):
                error = APIError(
                    400,
                    f"model {entry.id!r} is English-only; language {req.language!r} needs a "
                    "multilingual model",
                    param="language",
                    code="invalid_value",
                )
            if error is not None:
                self._fail(job, error)

    def _deliver(self, job: _Job, index: int, result: WindowResult) -> None:
        if job.cancelled or job.future.done():
            return
        job.results[index] = result
        # A long file's windows share its language: pin the first detection for the rest.
        if index == 0 and job.request.language is None:
            for w in job.windows[1:]:
                w.language = result.language
        ts_map = SpeechTimestampsMap(job.chunks, SAMPLE_RATE) if job.chunks else None
        while job.next_window in job.results:
            for raw in job.results[job.next_window].segments:
                seg = _segment(len(job.emitted), raw, ts_map)
                job.emitted.append(seg)
                if job.on_segment is not None:
                    job.on_segment(seg)
            job.next_window += 1
        if job.next_window == len(job.windows):
            with self._lock:
                self._finish(job)

    def _finish(self, job: _Job) -> None:
        # Called with the lock held.
        first = job.results.get(0)
        result = TranscriptionResult(
            model=job.model_id,
            task=job.request.task,
            language=first.language if first else (job.request.language or "en"),
            language_probability=first.language_probability if first else 0.0,
            duration=job.seconds,
            segments=list(job.emitted),
            processing_seconds=time.monotonic() - (job.started_at or job.admitted_at),
        )
        self._release(job, "ok")
        self.metrics.audio_seconds.inc(job.seconds)
        if job.seconds > 0:
            self.metrics.rtf.observe(result.processing_seconds / job.seconds)
        _post(job, result, None)

    def _fail(self, job: _Job, exc: BaseException) -> None:
        with self._lock:
            if job.future.done() or job.cancelled:
                return
            job.cancelled = True  # skip its remaining windows
            self._release(job, "error")
        if not isinstance(exc, APIError):
            exc = APIError(
                500,
                f"transcription failed: {type(exc).__name__}: {exc}",
                type="server_error",
            )
        _post(job, None, exc)


def _idle(lane: _Lane) -> int:
    """Workers of the lane not splitting or decoding now, the caller included (lock held)."""
    return max(1, len(lane.threads) - lane.busy)


def usable_cpus() -> int:
    """Cores this process may run on (a container's CPU limit shows in its affinity mask)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def bulk_layout(workers: int, cpu_threads: int, *, separate: bool, cpu: bool) -> tuple[int, int]:
    """(bulk workers, CTranslate2 threads per worker) for the settings and this machine.

    Automatic (`workers` 0) on CPU: one worker per core, at most 4, sharing the cores (or
    `cpu_threads`, when set) evenly. With one model for both lanes (the default on GPU) the
    bulk lane has one worker, as the shared model has one replica; on GPU a separate bulk model
    gets `workers` CUDA streams (default 1). Threads 0 leaves the choice to CTranslate2.
    """
    if not separate:
        return 1, 0
    if not cpu:
        return workers or 1, 0
    cores = cpu_threads or usable_cpus()
    if workers == 0:
        workers = max(1, min(cores, 4))
    return workers, max(1, cores // workers)


def _post(job: _Job, result, exc: BaseException | None) -> None:
    """Hand the outcome to the request's event loop (gone at shutdown: nobody is waiting)."""
    with contextlib.suppress(RuntimeError):
        job.loop.call_soon_threadsafe(_resolve, job.future, result, exc)


def _resolve(future: asyncio.Future, result, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _segment(index: int, raw: dict, ts_map: SpeechTimestampsMap | None) -> Segment:
    start, end = float(raw["start"]), float(raw["end"])
    words = None
    if raw.get("words") is not None:
        words = []
        for w in raw["words"]:
            ws, we = float(w["start"]), float(w["end"])
            if ts_map is not None:
                chunk = ts_map.get_chunk_index((ws + we) / 2)
                ws, we = ts_map.get_original_time(ws, chunk), ts_map.get_original_time(we, chunk)
            words.append(Word(ws, we, w["word"], float(w["probability"])))
        if words:
            start, end = words[0].start, words[-1].end
    elif ts_map is not None:
        start = ts_map.get_original_time(start)
        end = ts_map.get_original_time(end, is_end=True)
    return Segment(
        id=index,
        seek=int(raw["seek"]),
        start=round(start, 3),
        end=round(end, 3),
        text=raw["text"],
        tokens=list(raw["tokens"]),
        temperature=float(raw["temperature"]),
        avg_logprob=float(raw["avg_logprob"]),
        compression_ratio=float(raw["compression_ratio"]),
        no_speech_prob=float(raw["no_speech_prob"]),
        words=words,
    )


async def cancel_on_disconnect(receive: Callable[[], Awaitable[dict]], work: Awaitable[T]) -> T:
    """Await `work`, cancelling it when the HTTP client hangs up (its slot is freed at once).

    A plain (non-streaming) response is not cancelled by the server when the client goes
    away, so without this a queue of abandoned requests would still be decoded. Once the body
    has been read, the next ASGI message can only be `http.disconnect`; waiting for it is
    reliable through middleware, unlike polling `Request.is_disconnected()`.
    """

    async def watch() -> None:
        while (await receive()).get("type") != "http.disconnect":
            pass

    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait([task, watcher], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        # Nobody will read this answer; it only ends the request cleanly (nginx's 499).
        raise APIError(499, "the client closed the connection", code="client_closed")
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()


def install_queue_full_handler(app) -> None:
    """503 with Retry-After for a full queue (OpenAI clients honour it when they retry)."""
    from .errors import error_response

    @app.exception_handler(QueueFull)
    async def _queue_full(_, exc: QueueFull):
        response = error_response(exc)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
