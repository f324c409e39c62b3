"""Prometheus metrics in the text exposition format (version 0.0.4).

Written here instead of pulling in prometheus_client: the server needs a handful of counters,
gauges and histograms, and the STT container should carry as few packages as possible.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LabelKey = tuple[tuple[str, str], ...]


def _labels(key: LabelKey, extra: tuple[str, str] | None = None) -> str:
    pairs = list(key) + ([extra] if extra else [])
    if not pairs:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str) -> None:
        self.name = name
        self.help = help_text
        self._lock = threading.Lock()

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str) -> None:
        super().__init__(name, help_text)
        self._values: dict[LabelKey, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        return self._values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return self.header() + [f"{self.name}{_labels(k)} {_num(v)}" for k, v in items]


class Gauge(_Metric):
    kind = "gauge"

    def __init__(self, name: str, help_text: str) -> None:
        super().__init__(name, help_text)
        self._value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        with self._lock:
            self._value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.inc(-amount)

    def set(self, value: float) -> None:
        with self._lock:
            self._value = value

    def render(self) -> list[str]:
        return self.header() + [f"{self.name} {_num(self._value)}"]


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, buckets: Iterable[float]) -> None:
        super().__init__(name, help_text)
        self.buckets = tuple(sorted(buckets)) + (math.inf,)
        self._series: dict[LabelKey, tuple[list[int], list[float]]] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            counts, total = self._series.setdefault(key, ([0] * len(self.buckets), [0.0]))
            for i, bound in enumerate(self.buckets):
                if value <= bound:
                    counts[i] += 1
            total[0] += value

    def render(self) -> list[str]:
        lines = self.header()
        with self._lock:
            items = sorted((k, (list(c), t[0])) for k, (c, t) in self._series.items())
        for key, (counts, total) in items:
            for bound, count in zip(self.buckets, counts, strict=True):
                lines.append(f"{self.name}_bucket{_labels(key, ('le', _num(bound)))} {count}")
            lines.append(f"{self.name}_sum{_labels(key)} {_num(total)}")
            lines.append(f"{self.name}_count{_labels(key)} {counts[-1]}")
        return lines


class Metrics:
    """The server's metrics; one instance per app so tests start from zero."""

    def __init__(self) -> None:
        p = "aistack_stt_"
        self.requests = Counter(p + "requests_total", "HTTP requests by endpoint and status code.")
        self.latency = Histogram(
            p + "request_duration_seconds",
            "Time from request to response, by endpoint.",
            (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
        )
        self.audio_seconds = Counter(p + "audio_seconds_total", "Seconds of audio transcribed.")
        self.rtf = Histogram(
            p + "real_time_factor",
            "Processing time divided by audio duration, per transcription.",
            (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5),
        )
        self.queue_depth = Gauge(p + "queue_depth", "Transcriptions waiting for a model.")
        self.in_progress = Gauge(p + "transcriptions_in_progress", "Transcriptions running now.")
        self.model_loads = Counter(p + "model_loads_total", "Models loaded, by model and outcome.")
        self.model_unloads = Counter(p + "model_unloads_total", "Models unloaded, by reason.")
        self.models_loaded = Gauge(p + "models_loaded", "Models held in memory now.")
        self.wyoming_decodes = Counter(
            p + "wyoming_decodes_total",
            "Wyoming answers by when their decode started: `early` (at the speech end, before "
            "audio-stop), `endpoint` (answered before audio-stop), `after_stop`.",
        )

    def render(self) -> str:
        parts = (
            self.requests,
            self.latency,
            self.audio_seconds,
            self.rtf,
            self.queue_depth,
            self.in_progress,
            self.model_loads,
            self.model_unloads,
            self.models_loaded,
            self.wyoming_decodes,
        )
        lines: list[str] = []
        for metric in parts:
            lines.extend(metric.render())
        return "\n".join(lines) + "\n"
