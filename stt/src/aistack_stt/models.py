"""The registry of loaded Whisper models: loading, holding, unloading.

`ModelManager` owns the table of loaded models and the lock that guards it (with each
entry's users and last use); models are constructed on its one long-lived loader thread. It
has two helpers with one job each: `names` (model_names.py) decides which ids a client may
use and where they lead, `idle` (model_idle.py) unloads models idle for `model_ttl`. The
manager's `canonical_id`, `resolve`, `available` and `default_id` are the naming policy's.

The model settings (default model, compute type, interim model) change while running with
`switch()`: a model swap (model_swap.py) loads the next models outside the table with
`load_detached()`, then switches in one step under the lock. The replaced models' ids lead to
the new default from then on (`_retired`), so a request queued for the old model before the
switch is served by the new one instead of loading the old one again or failing.

`ModelManager.get()` is the one way to obtain a loaded `WhisperModel`; the HTTP engine and the
WebSocket sessions both use it, so time-to-live unloading sees every user of a model.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import ctranslate2
from faster_whisper import WhisperModel
from faster_whisper.utils import download_model
from huggingface_hub import constants as hub_constants

from .compute import DEFAULT_COMPUTE_TYPE
from .config import Settings
from .errors import APIError
from .metrics import Metrics
from .model_idle import IdleUnloader
from .model_names import ModelNames, ModelSource
from .vram import VramGuard, guard_for
from .warmup import warm_up

log = logging.getLogger("aistack_stt.models")


@dataclass
class LoadedModel:
    id: str
    model: WhisperModel
    source: str
    loaded_at: float
    last_used: float
    users: int = 0
    compute_type: str = ""
    files: tuple[int, ...] | None = None  # model.bin as loaded (files_stamp)

    @property
    def multilingual(self) -> bool:
        return bool(self.model.model.is_multilingual)


@dataclass(frozen=True)
class ModelInfo:
    id: str
    source: str
    loaded_at: float
    last_used: float
    in_use: int
    multilingual: bool


def files_stamp(path: str | Path) -> tuple[int, ...] | None:
    """Which model.bin a directory holds now (device, inode, size, mtime): a model put in
    place again under the same name (the role replaces the directory) reads differently."""
    try:
        st = (Path(path) / "model.bin").stat()
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_compute_type(compute_type: str, device: str) -> str:
    """A sensible default per device: int8 on CPU, float16 on NVIDIA GPUs."""
    if compute_type not in ("default", "auto"):
        return compute_type
    return DEFAULT_COMPUTE_TYPE["cuda" if device == "cuda" else "cpu"]


def _interim(settings: Settings) -> str | None:
    interim = settings.live.interim_model
    return interim.strip() if interim else None


class ModelManager:
    """The registry: which models are loaded, who uses them, and loading them once each."""

    def __init__(
        self, settings: Settings, metrics: Metrics | None = None, vram: VramGuard | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.device = resolve_device(settings.device)
        self.compute_type = resolve_compute_type(settings.compute_type, self.device)
        # On a GPU shared with Ollama: checks free memory before each load (vram/).
        self.vram = vram or guard_for(settings, self.device, self.compute_type)
        self._models: dict[str, LoadedModel] = {}
        # Guards _models, _loading and each entry's users and last_used.
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        # Ids of models a switch replaced -> the default that replaced them (switch()).
        self._retired: dict[str, str] = {}
        self.names = ModelNames(settings, self._loaded_ids)
        self.idle = IdleUnloader(self.loaded, self.unload, settings.model_ttl)
        # Models are constructed on one long-lived thread. CTranslate2 sets up its OpenMP
        # workers from the constructing thread; when that thread exits (a request thread, a
        # preload thread) every later decode on the model ran 2-3x slower here (measured:
        # 1.9 s command, tiny.en, 2 threads: 2.4 s vs 6-9 s).
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aistack-stt-load")

    # -- naming (model_names.py) ----------------------------------------------------------

    @property
    def default_id(self) -> str:
        return self.names.default_id

    @property
    def interim_id(self) -> str | None:
        """The live sessions' interim model (settings.live.interim_model), None for none."""
        return _interim(self.settings)

    def canonical_id(self, model_id: str) -> str:
        retired = self._retired.get(model_id.strip())
        return retired if retired is not None else self.names.canonical_id(model_id)

    def resolve(self, model_id: str) -> ModelSource:
        return self.names.resolve(model_id)

    def available(self) -> list[str]:
        return self.names.available()

    # -- the registry ---------------------------------------------------------------------

    def _loaded_ids(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def is_loaded(self, model_id: str) -> bool:
        return self.canonical_id(model_id) in self._loaded_ids()

    def loaded(self) -> list[ModelInfo]:
        with self._lock:
            models = list(self._models.values())
        return [
            ModelInfo(m.id, m.source, m.loaded_at, m.last_used, m.users, m.multilingual)
            for m in models
        ]

    def get(self, model_id: str) -> WhisperModel:
        """A loaded model (loading it first if needed). Blocking: call from a worker thread."""
        return self._acquire(model_id, hold=False).model

    @contextlib.contextmanager
    def use(self, model_id: str) -> Iterator[LoadedModel]:
        """Hold a model for the duration of a transcription so TTL unloading waits for it."""
        entry = self._acquire(model_id, hold=True)
        try:
            yield entry
        finally:
            with self._lock:
                entry.users -= 1
                entry.last_used = time.monotonic()

    def _acquire(self, model_id: str, hold: bool) -> LoadedModel:
        mid = self.canonical_id(model_id)
        with self._lock:
            entry = self._models.get(mid)
            if entry is not None:
                entry.last_used = time.monotonic()
                entry.users += hold
                return entry
            gate = self._loading.setdefault(mid, threading.Lock())
        with gate:  # one load per model at a time; others wait for it and reuse the result
            with self._lock:
                entry = self._models.get(mid)
            if entry is None:
                entry = self._load(mid, self.resolve(mid), self.compute_type, self.names)
            with self._lock:
                if entry.compute_type != self.compute_type:  # a switch came in between
                    entry.users += hold
                    return entry  # this request's, never the table's
                self._models.setdefault(mid, entry)
                entry = self._models[mid]
                entry.last_used = time.monotonic()
                entry.users += hold
                self.metrics.models_loaded.set(len(self._models))
            return entry

    # -- loading --------------------------------------------------------------------------

    def load_detached(self, names: ModelNames, mid: str, compute_type: str) -> LoadedModel:
        """Load and warm up `mid` as `names` (the next settings) sees it, outside the table:
        a model swap's next model. Blocking: call from a worker thread."""
        source = names.operator_source() if mid == names.default_id else names.resolve(mid)
        return self._load(mid, source, compute_type, names)

    def _load(
        self, mid: str, source: ModelSource, compute_type: str, names: ModelNames
    ) -> LoadedModel:
        started = time.monotonic()
        try:
            if source.path is not None:
                path = str(source.path)
            else:
                path = self._download(source, names.default_id)
            model = self._loader.submit(self._construct, mid, path, compute_type).result()
        except APIError:
            self.metrics.model_loads.inc(model=mid, outcome="error")
            raise
        except Exception as exc:  # CTranslate2 and the tokenizer raise assorted types
            self.metrics.model_loads.inc(model=mid, outcome="error")
            raise APIError(
                503,
                f"model {mid!r} failed to load: {type(exc).__name__}: {exc}",
                type="server_error",
                param="model",
                code="model_load_failed",
            ) from None
        self.metrics.model_loads.inc(model=mid, outcome="ok")
        now = time.monotonic()
        log.info("loaded model %s (%s) from %s in %.1fs", mid, compute_type, path, now - started)
        return LoadedModel(
            mid, model, path, now, now, compute_type=compute_type, files=files_stamp(path)
        )

    def _construct(self, mid: str, path: str, compute_type: str) -> WhisperModel:
        """On the loader thread, so loads never count the same free GPU memory twice."""
        if self.vram is not None:
            self.vram.make_room(mid, Path(path), self, compute_type=compute_type)
        model = WhisperModel(
            path,
            device=self.device,
            compute_type=compute_type,
            cpu_threads=self.settings.cpu_threads,
        )
        warm_up(model, mid)  # before anyone waits on it (warmup.py)
        return model

    def _download(self, source: ModelSource, default_id: str) -> str:
        assert source.repo_id is not None
        model_dir = self.settings.model_dir
        try:
            model_dir.mkdir(parents=True, exist_ok=True)
            # Only the operator's model is fetched, unless clients may download (`hub`): a
            # client's pick among cached hub models is read from the cache, never refreshed.
            offline = source.id != default_id and self.settings.client_models == "local"
            return download_model(
                source.repo_id, cache_dir=str(model_dir), local_files_only=offline
            )
        except Exception as exc:
            name = type(exc).__name__
            if name in ("RepositoryNotFoundError", "RevisionNotFoundError"):
                raise APIError(
                    404,
                    f"model {source.id!r}: the hub has no repository {source.repo_id}",
                    param="model",
                    code="model_not_found",
                ) from None
            where = (
                "the hub is disabled (HF_HUB_OFFLINE)"
                if hub_constants.HF_HUB_OFFLINE
                else f"{hub_constants.ENDPOINT}/{source.repo_id} is not reachable"
            )
            raise APIError(
                503,
                f"model {source.id!r} is not in {model_dir} and could not be downloaded: "
                f"{where} ({name}: {exc}). Copy the model directory to {model_dir}/"
                f"{source.id}, or check HF_ENDPOINT and HF_HUB_OFFLINE",
                type="server_error",
                param="model",
                code="model_load_failed",
            ) from None

    # -- switching the model settings (model_swap.py) -----------------------------------

    def names_for(self, settings: Settings) -> ModelNames:
        """The naming policy of `settings` over this registry (a swap's next settings)."""
        return ModelNames(settings, self._loaded_ids)

    def current(self, mid: str) -> LoadedModel | None:
        """The table's entry for `mid` (no loading, no use counted)."""
        with self._lock:
            return self._models.get(mid)

    def switch(
        self, settings: Settings, names: ModelNames, compute_type: str, staged: list[LoadedModel]
    ) -> list[str]:
        """Serve with `settings` from now on, with the `staged` models loaded for it; returns
        the ids unloaded. In one step under the lock: the old default (and interim) go unless
        the new settings use them, and on a compute type change every other model too."""
        new_ids = {names.default_id, _interim(settings) or names.default_id}
        with self._lock:
            old_ids = {self.default_id, self.interim_id or self.default_id}
            changed_type = compute_type != self.compute_type
            self.settings, self.names, self.compute_type = settings, names, compute_type
            gone = [
                self._models.pop(mid)
                for mid in list(self._models)
                if (mid in old_ids and mid not in new_ids) or (changed_type and mid not in new_ids)
            ]
            for entry in staged:
                replaced = self._models.get(entry.id)
                if replaced is not None:
                    gone.append(replaced)
                self._models[entry.id] = entry
            retired = {*self._retired, *(old_ids - new_ids)} - new_ids
            self._retired = dict.fromkeys(retired, names.default_id)
            self.metrics.models_loaded.set(len(self._models))
            for entry in gone:
                self.metrics.model_unloads.inc(model=entry.id, reason="switch")
        # Requests still decoding with a replaced model hold their own reference: they finish
        # on it, and its memory goes when the last one does.
        for entry in gone:
            log.info("unloaded model %s (%s, switch)", entry.id, entry.compute_type)
        return [entry.id for entry in gone]

    # -- unloading ------------------------------------------------------------------------

    def unload(self, model_id: str, reason: str = "request") -> bool:
        mid = self.canonical_id(model_id)
        with self._lock:
            entry = self._models.pop(mid, None)
            if entry is None:
                return False
            # Counted with the removal, in one step: whoever sees the model gone from
            # /api/ps also sees the unload in /metrics. Freeing it (below) takes a while.
            self.metrics.models_loaded.set(len(self._models))
            self.metrics.model_unloads.inc(model=mid, reason=reason)
        # Dropping the last reference frees the CTranslate2 model (and its GPU memory; about
        # 0.1 s for tiny.en on CPU). A transcription still running keeps its own reference
        # and finishes normally.
        del entry
        log.info("unloaded model %s (%s)", mid, reason)
        return True

    # -- idle unloading (model_idle.py) --------------------------------------------------

    def sweep(self, now: float | None = None) -> list[str]:
        """Unload models idle for longer than the TTL; returns their ids."""
        return self.idle.sweep(now)

    def start_sweeper(self, interval: float | None = None) -> None:
        self.idle.start(interval)

    def close(self) -> None:
        self.idle.stop()
        for mid in self._loaded_ids():
            self.unload(mid, reason="shutdown")
        self._loader.shutdown(wait=False, cancel_futures=True)
