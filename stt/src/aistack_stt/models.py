"""Which Whisper models exist, where their files are, and which are held in memory.

A model id is an alias (`tiny.en`, `base`, `large-v3-turbo`, ...), `whisper-1` (the configured
default, the name OpenAI clients send), a Hugging Face repo id, or a directory holding a
CTranslate2 model. Aliases look in the model directory first (`<model_dir>/<alias>/`), so an
offline host can be seeded with plain directories; otherwise the hub is asked once and the
files kept under `<model_dir>` (huggingface_hub honours HF_ENDPOINT and HF_HUB_OFFLINE).

Which ids a client may use is the operator's choice (`Settings.client_models`): by default
only the configured model, `whisper-1` and what already lies in the model directory. Client
ids never reach the filesystem as paths unless the operator allows `any`, and never make the
server download unless it allows `hub`; a refusal reads the same whether or not a directory of
that name exists. Every spelling of one model maps to one canonical id (`canonical_id`), the
key of the table of loaded models, so a model is loaded once however it is named.

`ModelManager.get()` is the one way to obtain a loaded `WhisperModel`; the HTTP engine and the
WebSocket sessions both use it, so time-to-live unloading sees every user of a model.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import ctranslate2
from faster_whisper import WhisperModel
from faster_whisper.utils import _MODELS as HUB_ALIASES  # alias -> hub repo id
from faster_whisper.utils import download_model
from huggingface_hub import constants as hub_constants

from .config import Settings
from .errors import APIError
from .metrics import Metrics
from .vram import VramGuard, guard_for
from .warmup import warm_up

log = logging.getLogger("aistack_stt.models")

DEFAULT_ALIAS = "whisper-1"
# Longer ids are refused before anything looks at them (a path is at most 4096 bytes; a hub
# repo id is far shorter); shorter ones that no file system accepts are simply not found.
MAX_ID_CHARS = 1024
# A name is one path component that cannot climb out of the model directory (not `.`, `..`).
_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
# Several aliases lead to one repo (`large`, `large-v3`): the first one names it.
_REPO_ALIAS: dict[str, str] = {}
for _alias, _repo in HUB_ALIASES.items():
    _REPO_ALIAS.setdefault(_repo, _alias)


def _is_file(path: Path) -> bool:
    """`path.is_file()`, false for names the file system refuses (too long, NUL)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _hub_key(mid: str) -> str | None:
    """The hub repo an alias or repo id names (None for anything else)."""
    if mid in HUB_ALIASES:
        return HUB_ALIASES[mid]
    if _REPO_ID.match(mid):
        return mid
    return None


@dataclass(frozen=True)
class ModelSource:
    """Where a model id leads: a local directory, or a hub repo to download."""

    id: str
    path: Path | None = None
    repo_id: str | None = None


@dataclass
class LoadedModel:
    id: str
    model: WhisperModel
    source: str
    loaded_at: float
    last_used: float
    users: int = 0

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


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


def resolve_compute_type(compute_type: str, device: str) -> str:
    """A sensible default per device: int8 on CPU, float16 on NVIDIA GPUs."""
    if compute_type not in ("default", "auto"):
        return compute_type
    return "float16" if device == "cuda" else "int8"


class ModelManager:
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
        self._lock = threading.Lock()  # guards _models and _loading
        self._loading: dict[str, threading.Lock] = {}
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        # Models are constructed on one long-lived thread. CTranslate2 sets up its OpenMP
        # workers from the constructing thread; when that thread exits (a request thread, a
        # preload thread) every later decode on the model ran 2-3x slower here (measured:
        # 1.9 s command, tiny.en, 2 threads: 2.4 s vs 6-9 s).
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="aistack-stt-load")

    # -- naming ---------------------------------------------------------------------------

    @property
    def default_id(self) -> str:
        return self.settings.model.strip()

    def canonical_id(self, model_id: str) -> str:
        """The one id of the model `model_id` names, or an APIError when a client may not use it.

        Only what the operator allows passes (`client_models`), and the refusal does not
        depend on what exists outside the model directory: no directory-exists oracle.
        """
        mid = model_id.strip()
        if not mid:
            raise APIError(400, "model is empty", param="model", code="invalid_value")
        if len(mid) > MAX_ID_CHARS:
            raise APIError(
                400,
                f"model id is {len(mid)} characters long; model ids are at most {MAX_ID_CHARS}",
                param="model",
                code="invalid_value",
            )
        if not mid.isprintable():
            raise APIError(
                400, "model id contains control characters", param="model", code="invalid_value"
            )
        if mid in self._models or mid in (DEFAULT_ALIAS, self.default_id):
            return self.default_id if mid == DEFAULT_ALIAS else mid
        mode = self.settings.client_models
        named = _NAME.match(mid) or _REPO_ID.match(mid)  # `owner/name` is a repo, not a path
        if mid.startswith(("/", "~")) or (mode == "any" and not named):
            if mode != "any":
                raise APIError(
                    400,
                    f"model {mid!r} is a path; name a model instead: {', '.join(self.available())}",
                    param="model",
                    code="invalid_value",
                )
            return self._canonical_path(mid)
        if _NAME.match(mid) and self._local_dir(mid) is not None:
            return mid
        repo = _hub_key(mid)
        if repo is not None:
            if repo == _hub_key(self.default_id):
                return self.default_id
            canonical = _REPO_ALIAS.get(repo, mid)
            if self._local_dir(canonical) is not None or mode != "local" or self._cached(repo):
                return canonical
        raise APIError(
            404,
            f"model {mid!r} is not served here; use one of {', '.join(self.available())}",
            param="model",
            code="model_not_found",
        )

    def _canonical_path(self, mid: str) -> str:
        """A directory given by a trusted client (`client_models: any`): its real path."""
        real = os.path.realpath(os.path.expanduser(mid))
        if not _is_file(Path(real) / "model.bin"):
            raise APIError(
                404,
                f"model {mid!r}: no CTranslate2 model (model.bin) in that directory",
                param="model",
                code="model_not_found",
            )
        default = self._operator_source()
        if default.path is not None and os.path.realpath(default.path) == real:
            return self.default_id
        parent, name = os.path.split(real)
        model_dir = os.path.realpath(self.settings.model_dir)
        if parent == model_dir and _NAME.match(name) and self._local_dir(name) is not None:
            return name
        return real

    def _local_dir(self, name: str) -> Path | None:
        """`<model_dir>/<name>` when it holds a model."""
        local = self.settings.model_dir / name
        return local if _NAME.match(name) and _is_file(local / "model.bin") else None

    def _cached(self, repo_id: str) -> bool:
        """Whether a hub download of `repo_id` is complete in the model directory."""
        cache = self.settings.model_dir / ("models--" + repo_id.replace("/", "--"))
        snapshots = cache / "snapshots"
        try:
            return any(_is_file(snap / "model.bin") for snap in snapshots.iterdir())
        except OSError:
            return False

    def _operator_source(self) -> ModelSource:
        """Where the configured default model is: the operator may name any directory."""
        mid = self.default_id
        path = Path(mid).expanduser()
        with contextlib.suppress(OSError, ValueError):
            if path.is_dir():
                return ModelSource(mid, path=path)
        local = self._local_dir(mid)
        if local is not None:
            return ModelSource(mid, path=local)
        repo = _hub_key(mid)
        if repo is not None:
            return ModelSource(mid, repo_id=repo)
        if mid.startswith(("/", ".", "~")):  # the operator's own path: saying so reveals nothing
            raise APIError(
                404,
                f"model directory {mid} does not exist (AISTACK_STT_MODEL)",
                param="model",
                code="model_not_found",
            )
        raise APIError(
            404,
            f"the configured model {mid!r} (AISTACK_STT_MODEL) is neither a directory holding a "
            f"CTranslate2 model, nor in {self.settings.model_dir}, nor an alias "
            f"({', '.join(HUB_ALIASES)}) or a Hugging Face repo id (owner/name)",
            param="model",
            code="model_not_found",
        )

    def resolve(self, model_id: str) -> ModelSource:
        """Map an id to files without loading anything; ids a client may not use are refused."""
        mid = self.canonical_id(model_id)
        if mid == self.default_id:
            return self._operator_source()
        if mid.startswith("/"):
            return ModelSource(mid, path=Path(mid))
        local = self._local_dir(mid)
        if local is not None:
            return ModelSource(mid, path=local)
        return ModelSource(mid, repo_id=_hub_key(mid))

    def available(self) -> list[str]:
        """Ids a client may name: the default, what is loaded, what lies in the model dir,
        and the aliases when the operator lets clients download (`client_models`)."""
        ids = [DEFAULT_ALIAS, self.default_id]
        ids += sorted(self._models)
        model_dir = self.settings.model_dir
        with contextlib.suppress(OSError):
            for child in sorted(model_dir.iterdir()):
                if self._local_dir(child.name) is not None:
                    ids.append(child.name)
                elif child.name.startswith("models--"):  # hub cache layout
                    repo = child.name[len("models--") :].replace("--", "/")
                    if self._cached(repo):
                        ids.append(_REPO_ALIAS.get(repo, repo))
        if self.settings.client_models != "local":
            ids += sorted(HUB_ALIASES)
        return list(dict.fromkeys(ids))

    # -- loading --------------------------------------------------------------------------

    def is_loaded(self, model_id: str) -> bool:
        return self.canonical_id(model_id) in self._models

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
                entry = self._load(mid)
            with self._lock:
                self._models.setdefault(mid, entry)
                entry = self._models[mid]
                entry.last_used = time.monotonic()
                entry.users += hold
                self.metrics.models_loaded.set(len(self._models))
            return entry

    def _load(self, mid: str) -> LoadedModel:
        source = self.resolve(mid)
        started = time.monotonic()
        try:
            path = str(source.path) if source.path is not None else self._download(source)
            model = self._loader.submit(self._construct, mid, path).result()
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
        log.info("loaded model %s from %s in %.1fs", mid, path, now - started)
        return LoadedModel(mid, model, path, loaded_at=now, last_used=now)

    def _construct(self, mid: str, path: str) -> WhisperModel:
        """On the loader thread, so loads never count the same free GPU memory twice."""
        if self.vram is not None:
            self.vram.make_room(mid, Path(path), self)
        model = WhisperModel(
            path,
            device=self.device,
            compute_type=self.compute_type,
            cpu_threads=self.settings.cpu_threads,
        )
        warm_up(model, mid)  # before anyone waits on it (warmup.py)
        return model

    def _download(self, source: ModelSource) -> str:
        assert source.repo_id is not None
        model_dir = self.settings.model_dir
        try:
            model_dir.mkdir(parents=True, exist_ok=True)
            # Only the operator's model is fetched, unless clients may download (`hub`): a
            # client's pick among cached hub models is read from the cache, never refreshed.
            offline = source.id != self.default_id and self.settings.client_models == "local"
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

    # -- time to live ---------------------------------------------------------------------

    def sweep(self, now: float | None = None) -> list[str]:
        """Unload models idle for longer than the TTL; returns their ids."""
        ttl = self.settings.model_ttl
        if ttl < 0:
            return []
        now = time.monotonic() if now is None else now
        with self._lock:
            idle = [
                m.id for m in self._models.values() if m.users == 0 and now - m.last_used >= ttl
            ]
        return [mid for mid in idle if self.unload(mid, reason="ttl")]

    def start_sweeper(self, interval: float | None = None) -> None:
        if self.settings.model_ttl < 0 or self._sweeper is not None:
            return
        period = interval or max(0.2, min(5.0, self.settings.model_ttl / 4))

        def loop() -> None:
            while not self._stop.wait(period):
                try:
                    self.sweep()
                except Exception:  # never let the sweeper die silently mid-run
                    log.exception("TTL sweep failed")

        self._sweeper = threading.Thread(target=loop, name="aistack-stt-ttl", daemon=True)
        self._sweeper.start()

    def close(self) -> None:
        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)
            self._sweeper = None
        for mid in list(self._models):
            self.unload(mid, reason="shutdown")
        self._loader.shutdown(wait=False, cancel_futures=True)
