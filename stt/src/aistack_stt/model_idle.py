"""Idle unloading: models nobody used for `model_ttl` seconds go, so their memory goes back.

`IdleUnloader` owns the TTL thread and nothing else: it reads the registry's snapshot of
loaded models (its `loaded`) and asks the registry to unload the idle ones (its `unload`);
the table of models and its lock stay with the registry (models.py). A model in use
(`in_use > 0`) is never idle; an unloaded model loads again on its next use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

log = logging.getLogger("aistack_stt.models")


class _Model(Protocol):
    id: str
    in_use: int
    last_used: float


class IdleUnloader:
    """Unloads the registry's models once they have sat idle for `ttl` seconds (-1: never)."""

    def __init__(
        self,
        loaded: Callable[[], Sequence[_Model]],
        unload: Callable[..., bool],
        ttl: int,
    ) -> None:
        self._loaded = loaded  # the registry's snapshot of its models
        self._unload = unload  # the registry's unload(model_id, reason=...)
        self.ttl = ttl
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sweep(self, now: float | None = None) -> list[str]:
        """Unload models idle for longer than the TTL; returns their ids."""
        if self.ttl < 0:
            return []
        now = time.monotonic() if now is None else now
        idle = [m.id for m in self._loaded() if m.in_use == 0 and now - m.last_used >= self.ttl]
        return [mid for mid in idle if self._unload(mid, reason="ttl")]

    def start(self, interval: float | None = None) -> None:
        """Sweep on a daemon thread every `interval` seconds (default: a quarter of the TTL,
        0.2-5 s); nothing when the TTL is -1 or the thread already runs."""
        if self.ttl < 0 or self._thread is not None:
            return
        period = interval or max(0.2, min(5.0, self.ttl / 4))

        def loop() -> None:
            while not self._stop.wait(period):
                try:
                    self.sweep()
                except Exception:  # never let the sweeper die silently mid-run
                    log.exception("TTL sweep failed")

        self._thread = threading.Thread(target=loop, name="aistack-stt-ttl", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
