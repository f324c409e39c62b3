"""Scheduling transcriptions under load: two lanes, cross-request batching, a bounded queue.

`Scheduler` is the server's `Transcriber` (engine.py); the parts are described in
`scheduler.py`'s docstring and in stt/README.md, "Under load".
"""

from .replicas import bulk_layout, usable_cpus
from .scheduler import Scheduler

__all__ = ["Scheduler", "bulk_layout", "usable_cpus"]
