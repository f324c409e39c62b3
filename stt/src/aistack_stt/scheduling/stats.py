"""The scheduler's own Prometheus metrics (appended to /metrics)."""

from __future__ import annotations

from ..metrics import Counter, Gauge, Histogram
from .job import LANES


class SchedulerMetrics:
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
