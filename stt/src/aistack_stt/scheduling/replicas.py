"""The bulk lane's own model: how many workers, how many threads each, and its replicas."""

from __future__ import annotations

import logging
import os
import threading

from faster_whisper import WhisperModel

from ..models import LoadedModel, ModelManager

log = logging.getLogger("aistack_stt.scheduling")


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


class BulkReplicas:
    """One CTranslate2 model per model id with a replica per bulk worker (shared weights).

    Built from a (low-priority) bulk worker thread, so CTranslate2's threads for it inherit
    that priority. Forgotten when the ModelManager unloads the model (TTL, /api/ps).
    """

    def __init__(self, models: ModelManager, workers: int, threads: int) -> None:
        self.models = models
        self.workers = workers
        self.threads = threads
        # model id -> (source, compute type, model): a model swap may change either
        self._held: dict[str, tuple[str, str, WhisperModel]] = {}
        self._lock = threading.Lock()  # one worker builds a replica, the others wait

    def get(self, entry: LoadedModel) -> WhisperModel:
        """The replicas of the loaded model `entry` (built on first use)."""
        with self._lock:
            held = self._held.get(entry.id)
            if held is not None and held[:2] == (entry.source, entry.compute_type):
                return held[2]
            model = WhisperModel(
                entry.source,
                device=self.models.device,
                compute_type=entry.compute_type or self.models.compute_type,
                cpu_threads=self.threads,
                num_workers=self.workers,
            )
            self._held[entry.id] = (entry.source, entry.compute_type, model)
        log.info(
            "bulk lane model %s loaded: %d replica(s), %d thread(s) each",
            entry.id,
            self.workers,
            self.threads,
        )
        return model

    def forget_unloaded(self) -> None:
        """Drop replicas of models no longer loaded; never waits for a replica being built."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            for mid in list(self._held):
                if not self.models.is_loaded(mid):
                    del self._held[mid]
        finally:
            self._lock.release()

    def clear(self) -> None:
        with self._lock:
            self._held.clear()
