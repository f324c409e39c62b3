"""The decision before a model loads on a shared GPU: load, make room, or refuse with numbers.

`VramGuard.make_room()` runs on the model manager's loader thread, right before CTranslate2
builds a model, so two loads never count the same free memory twice. It

1. estimates what the model needs (estimate.py) plus the margin, and reads free memory;
2. when short, unloads this server's own idle models, least recently used first, one at a
   time until the model fits;
3. when still short, asks the Ollama of the same machine to unload models, least recently used
   first (soonest `expires_at`), just enough of them to cover the shortfall by their
   `size_vram`, and waits up to `wait_s` for the memory to show up as free;
4. when still short, raises a 503 `insufficient_vram` that names every number.

The guard owns the estimates of the models it let in (`_held`, under `_lock`); the model
manager owns the models themselves and tells the guard nothing: what it unloaded is found by
comparing with `own.loaded()`.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..config import VramSettings
from ..errors import APIError
from ..metrics import Counter
from .estimate import MIB, Estimate, estimate
from .gpu import GpuMemory, GpuReader
from .ollama import OllamaClient, OllamaModel, OllamaUnavailable

log = logging.getLogger("aistack_stt.vram")

SELF = "aistack-stt"
OLLAMA = "ollama"
_POLL_S = 0.25


class OwnModel(Protocol):
    id: str
    in_use: int
    last_used: float


class OwnModels(Protocol):
    """What the guard needs of the model manager."""

    def loaded(self) -> list[OwnModel]: ...

    def unload(self, model_id: str, reason: str = ...) -> bool: ...


@dataclass(frozen=True)
class Tenants:
    """Who holds how much of the GPU now (bytes); `self_measured` says whether aistack-stt's
    figure is NVML's (its PID was visible) or the sum of its estimates."""

    gpu: GpuMemory
    self_bytes: int
    self_measured: bool
    self_models: dict[str, int]
    ollama_bytes: int | None  # None: no Ollama configured, or it did not answer
    ollama_models: list[OllamaModel]
    ollama_error: str | None

    @property
    def other_bytes(self) -> int:
        return max(0, self.gpu.used - self.self_bytes - (self.ollama_bytes or 0))


def _mib(value: int | float) -> int:
    return round(value / MIB)


class VramGuard:
    def __init__(
        self,
        gpu: GpuReader,
        ollama: OllamaClient | None,
        settings: VramSettings,
        compute_type: str,
        *,
        max_batch: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.gpu = gpu
        self.ollama = ollama
        self.settings = settings
        self.compute_type = compute_type
        self.max_batch = max_batch
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()  # guards _held and _context
        self._held: dict[str, Estimate] = {}
        self._context = False  # whether this process has put anything on the GPU yet
        self.evictions = Counter(
            "aistack_stt_vram_evictions_total",
            "Models unloaded to make room on the GPU, by tenant (aistack-stt or ollama).",
        )
        self.refusals = Counter(
            "aistack_stt_vram_refusals_total",
            "Model loads refused with 503 insufficient_vram, by model.",
        )

    # -- the decision ---------------------------------------------------------------------

    def make_room(
        self, model_id: str, path: Path | None, own: OwnModels, *, compute_type: str | None = None
    ) -> Estimate:
        """Return once `model_id` fits (recording its estimate), or raise 503 with the reason.

        `compute_type`: the one it loads in, when not the guard's (a model swap's next model)."""
        with self._lock:
            self._forget_unloaded(own)
            est = estimate(
                model_id,
                path,
                compute_type or self.compute_type,
                max_batch=self.max_batch,
                first_on_gpu=not self._context,
            )
        need = est.total_mib * MIB + self.settings.margin_mb * MIB
        try:
            reading = self.gpu.read()
        except APIError as exc:
            # No reading, no decision: the model loads as it would without the guard, and
            # /health's `vram` says why (a broken NVML must not stop the service).
            log.warning("loading %s without a GPU memory check: %s", model_id, exc.message)
            return est
        freed_own: list[str] = []
        if reading.free < need:
            freed_own, reading = self._free_own(model_id, own, need, reading)
        asked: list[OllamaModel] = []
        ollama_error = None
        if reading.free < need and self.ollama is not None:
            try:
                asked = self._free_ollama(need - reading.free)
            except OllamaUnavailable as exc:
                ollama_error = str(exc)
                log.warning("could not ask Ollama for GPU memory: %s", exc)
        if reading.free < need and (asked or freed_own):
            reading = self._wait_for(need)
        if reading.free < need:
            self.refusals.inc(model=model_id)
            raise APIError(
                503,
                self._reason(est, need, reading, freed_own, asked, ollama_error),
                type="server_error",
                param="model",
                code="insufficient_vram",
            )
        with self._lock:
            self._held[model_id] = est
            self._context = True
        log.info(
            "GPU memory for %s: needs ~%d MiB (+%d margin), %d MiB free of %d",
            model_id,
            est.total_mib,
            self.settings.margin_mb,
            _mib(reading.free),
            _mib(reading.total),
        )
        return est

    def _forget_unloaded(self, own: OwnModels) -> None:
        loaded = {m.id for m in own.loaded()}
        for mid in [m for m in self._held if m not in loaded]:
            del self._held[mid]

    def _free_own(
        self, model_id: str, own: OwnModels, need: int, reading: GpuMemory
    ) -> tuple[list[str], GpuMemory]:
        """Unload idle models, least recently used first, until `need` fits (re-read after
        each: freeing a CTranslate2 model returns its memory at once)."""
        idle = sorted(
            (m for m in own.loaded() if m.in_use == 0 and m.id != model_id),
            key=lambda m: m.last_used,
        )
        freed = []
        for model in idle:
            if reading.free >= need:
                break
            if own.unload(model.id, reason="vram"):
                freed.append(model.id)
                self.evictions.inc(tenant=SELF)
                with self._lock:
                    self._held.pop(model.id, None)
                reading = self.gpu.read()
        if freed:
            log.info("unloaded own idle models to make room on the GPU: %s", ", ".join(freed))
        return freed, reading

    def _free_ollama(self, shortfall: int) -> list[OllamaModel]:
        assert self.ollama is not None
        on_gpu = [m for m in self.ollama.loaded() if m.size_vram > 0]
        asked: list[OllamaModel] = []
        for model in sorted(on_gpu, key=lambda m: m.expires_at):
            if sum(m.size_vram for m in asked) >= shortfall:
                break
            self.ollama.unload(model.name)
            asked.append(model)
            self.evictions.inc(tenant=OLLAMA)
        if asked:
            log.info(
                "asked Ollama at %s to unload %s",
                self.ollama.url,
                ", ".join(f"{m.name} ({_mib(m.size_vram)} MiB)" for m in asked),
            )
        return asked

    def _wait_for(self, need: int) -> GpuMemory:
        deadline = self._clock() + self.settings.wait_s
        reading = self.gpu.read()
        while reading.free < need and self._clock() < deadline:
            self._sleep(_POLL_S)
            reading = self.gpu.read()
        return reading

    def _reason(
        self,
        est: Estimate,
        need: int,
        reading: GpuMemory,
        freed_own: list[str],
        asked: list[OllamaModel],
        ollama_error: str | None,
    ) -> str:
        parts = [
            f"model {est.model!r} needs about {_mib(need)} MiB of GPU memory "
            f"({est.total_mib} MiB for {est.compute_type}, {est.basis}, plus a "
            f"{self.settings.margin_mb} MiB margin), but only {_mib(reading.free)} MiB of "
            f"{_mib(reading.total)} MiB are free on {reading.name}"
        ]
        parts.append(
            "after unloading this server's idle models " + ", ".join(freed_own)
            if freed_own
            else "(this server had no idle model to unload)"
        )
        if self.ollama is None:
            parts.append("and no Ollama is configured to ask (AISTACK_STT_VRAM_OLLAMA_URL)")
        elif ollama_error:
            parts.append(f"and Ollama could not be asked: {ollama_error}")
        elif asked:
            names = ", ".join(f"{m.name} ({_mib(m.size_vram)} MiB)" for m in asked)
            parts.append(
                f"and asking Ollama at {self.ollama.url} to unload {names} "
                f"(waited {self.settings.wait_s:g} s)"
            )
        else:
            parts.append(f"and Ollama at {self.ollama.url} holds no model on the GPU")
        advice = (
            "Free GPU memory, choose a smaller model or compute type (int8_float16), or lower "
            "OLLAMA_MAX_LOADED_MODELS / raise OLLAMA_GPU_OVERHEAD for Ollama"
        )
        return " ".join(parts) + ". " + advice

    # -- reporting ------------------------------------------------------------------------

    def tenants(self, own: OwnModels) -> Tenants:
        reading = self.gpu.read()
        with self._lock:
            self._forget_unloaded(own)
            models = {mid: est.total_mib * MIB for mid, est in self._held.items()}
        measured = reading.processes.get(os.getpid())
        # Without our PID in NVML's list (usual in a container), the sum of the estimates.
        self_bytes = measured if measured is not None else sum(models.values())
        ollama_bytes, ollama_models, error = None, [], None
        if self.ollama is not None:
            try:
                ollama_models = self.ollama.loaded()
                ollama_bytes = sum(m.size_vram for m in ollama_models)
            except OllamaUnavailable as exc:
                error = str(exc)
        return Tenants(
            reading, self_bytes, measured is not None, models, ollama_bytes, ollama_models, error
        )

    def health(self, own: OwnModels) -> dict:
        """The `vram` object of /health: MiB per tenant."""
        try:
            t = self.tenants(own)
        except APIError as exc:
            return {"error": exc.message}
        return {
            "gpu": t.gpu.name,
            "total_mib": _mib(t.gpu.total),
            "free_mib": _mib(t.gpu.free),
            "margin_mib": self.settings.margin_mb,
            "tenants": {
                SELF: {
                    "mib": _mib(t.self_bytes),
                    "measured": t.self_measured,
                    "models": {mid: _mib(b) for mid, b in sorted(t.self_models.items())},
                },
                OLLAMA: {
                    "url": self.ollama.url if self.ollama is not None else None,
                    "mib": None if t.ollama_bytes is None else _mib(t.ollama_bytes),
                    "models": {m.name: _mib(m.size_vram) for m in t.ollama_models},
                    "error": t.ollama_error,
                },
                "other": {"mib": _mib(t.other_bytes)},
            },
        }

    def render_metrics(self, own: OwnModels) -> str:
        lines = self.evictions.render() + self.refusals.render()
        try:
            t = self.tenants(own)
        except APIError:
            return "\n".join(lines) + "\n"
        gpu = t.gpu.name.replace("\\", "\\\\").replace('"', '\\"')
        lines += [
            "# HELP aistack_stt_vram_total_bytes GPU memory of the device.",
            "# TYPE aistack_stt_vram_total_bytes gauge",
            f'aistack_stt_vram_total_bytes{{gpu="{gpu}"}} {t.gpu.total}',
            "# HELP aistack_stt_vram_free_bytes GPU memory free now.",
            "# TYPE aistack_stt_vram_free_bytes gauge",
            f'aistack_stt_vram_free_bytes{{gpu="{gpu}"}} {t.gpu.free}',
            "# HELP aistack_stt_vram_used_bytes GPU memory held now, by tenant "
            "(aistack-stt, ollama, other).",
            "# TYPE aistack_stt_vram_used_bytes gauge",
            f'aistack_stt_vram_used_bytes{{tenant="{SELF}"}} {t.self_bytes}',
        ]
        if t.ollama_bytes is not None:
            lines.append(f'aistack_stt_vram_used_bytes{{tenant="{OLLAMA}"}} {t.ollama_bytes}')
        lines.append(f'aistack_stt_vram_used_bytes{{tenant="other"}} {t.other_bytes}')
        return "\n".join(lines) + "\n"
