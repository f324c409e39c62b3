"""How far behind the scheduler is, and what that means for live interims.

Finals and HTTP requests are what users wait on; interims (live partials, `interim` in the
request) only make waiting nicer. So interims give way as work piles up:
- `normal`: every interim is admitted;
- `high` (waiting requests ≥ HIGH_PER_BATCH × max_batch): interims are coalesced, at most one
  waits at a time (a session's next interim covers all its audio so far, so nothing is lost);
- `critical` (≥ CRITICAL_PER_BATCH × max_batch): interims are refused (paused); finals still
  come. Sessions tell their clients where the protocol can say it (/ws `status`).
Called with the scheduler's lock held.
"""

from __future__ import annotations

from .job import Job

HIGH_PER_BATCH = 2
CRITICAL_PER_BATCH = 4
LEVELS = ("normal", "high", "critical")


def level(admitted: set[Job], max_batch: int) -> str:
    waiting = sum(1 for job in admitted if job.started_at is None)
    if waiting >= CRITICAL_PER_BATCH * max_batch:
        return "critical"
    if waiting >= HIGH_PER_BATCH * max_batch:
        return "high"
    return "normal"


def interim_refused(admitted: set[Job], max_batch: int) -> bool:
    """Whether a new interim must wait for a later turn (the session skips it)."""
    now = level(admitted, max_batch)
    if now == "critical":
        return True
    if now == "high":
        return any(job.request.interim and job.started_at is None for job in admitted)
    return False
