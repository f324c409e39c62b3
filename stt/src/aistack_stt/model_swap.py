"""Changing the model without a restart: SIGHUP, load and warm up the next model, switch.

`ModelSwap` owns one thread and the record of the last swap. At start the thread loads the
default model (the app's preload); after that it waits for `request()` (the SIGHUP handler of
`serve` calls it: it only sets an event, which is safe in a signal handler). Each request

1. reads the model settings again (model_reload.py: `model_env_file`, systemd's rules);
2. loads and warms up the models those settings need that are not loaded as wanted (the
   default and the interim model, in the new compute type) on the model manager's loader
   thread, outside its table, while the old models keep serving every request;
3. switches the manager to them in one step (models.py `switch`): the next request is decoded
   by the new model, requests already decoding finish on the old one, and the old one's
   memory goes back once they have.

A next model that fails to load changes nothing: the old one keeps serving and `/health`
says why in `swap.error`. Requests that arrive while a swap runs are remembered and run after
it, with the file as it is then. The record is read by `/health` (`next_model`, `swap`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from .config import Settings
from .config_options import ConfigError
from .errors import APIError
from .model_names import ModelNames
from .model_reload import ModelPlan
from .models import LoadedModel, ModelManager, files_stamp, resolve_compute_type

log = logging.getLogger("aistack_stt.models")


@dataclass(frozen=True)
class SwapRecord:
    """The last swap: `loading` (the old model serves), `done` or `failed` (with `error`)."""

    state: str
    model: str
    compute_type: str
    interim_model: str | None
    error: str | None = None
    restart_needed: tuple[str, ...] = ()  # settings the file changed that need a restart
    requests: int = 0  # SIGHUPs handled so far, this one included
    finished_at: float | None = None  # time.time()

    def as_json(self) -> dict:
        return {
            "state": self.state,
            "model": self.model,
            "compute_type": self.compute_type,
            "interim_model": self.interim_model,
            "error": self.error,
            "restart_needed": list(self.restart_needed),
            "requests": self.requests,
            "finished_at": self.finished_at,
        }


class ModelSwap:
    """The swap thread: the preload first, then one swap per request, in order."""

    def __init__(
        self,
        models: ModelManager,
        plan: Callable[[Settings], ModelPlan],
        preload: Callable[[], None] = lambda: None,
        on_loaded: Callable[[], None] = lambda: None,
    ) -> None:
        self.models = models
        self._plan = plan  # the running settings -> what the model env file asks for now
        self._preload = preload
        self._on_loaded = on_loaded  # the default model is loaded (readiness: ok)
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()  # guards _record and _requests
        self._record: SwapRecord | None = None
        self._requests = 0
        self._thread: threading.Thread | None = None

    # -- what others call -----------------------------------------------------------------

    def request(self) -> None:
        """Swap to what the model settings say now, once the swap in progress (if any) ends.
        Only sets an event: safe in a signal handler."""
        self._wanted.set()

    def health(self) -> dict:
        """`next_model` while a swap loads (None otherwise) and `swap`, the last swap's record."""
        with self._lock:
            record = self._record
        loading = record is not None and record.state == "loading"
        return {
            "next_model": record.model if loading else None,
            "swap": record.as_json() if record is not None else None,
        }

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aistack-stt-swap", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wanted.set()

    # -- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        self._preload()
        while True:
            self._wanted.wait()
            if self._stop.is_set():
                return
            self._wanted.clear()  # a SIGHUP from now on asks for another swap after this one
            try:
                self.swap()
            except Exception:  # never let the thread die: the next SIGHUP must still work
                log.exception("model swap failed")

    def swap(self) -> SwapRecord:
        """One swap, on the calling thread (the swap thread; tests call it directly)."""
        with self._lock:
            self._requests += 1
            count = self._requests
        running = self.models.settings
        try:
            plan = self._plan(running)
        except (OSError, ConfigError) as exc:
            if isinstance(exc, ConfigError):
                reason = "; ".join(exc.problems)
            else:
                reason = exc.strerror or str(exc)
            where = running.model_env_file
            return self._finish(
                SwapRecord("failed", self.models.default_id, self.models.compute_type,
                           self.models.interim_id, requests=count),
                f"cannot read the model settings from {where}: {reason}; the running model "
                "stays",
            )  # fmt: skip
        settings = plan.settings
        names = self.models.names_for(settings)
        compute_type = resolve_compute_type(settings.compute_type, self.models.device)
        record = SwapRecord(
            "loading",
            names.default_id,
            compute_type,
            settings.live.interim_model,
            restart_needed=plan.restart_needed,
            requests=count,
        )
        if plan.restart_needed:
            log.warning(
                "the model settings file also changes %s: only a restart applies them",
                ", ".join(plan.restart_needed),
            )
        self._set(record)
        log.info("model swap: loading %s (%s) while the current model serves",
                 names.default_id, compute_type)  # fmt: skip
        try:
            staged = self._load(settings, names, compute_type)
        except APIError as exc:
            return self._finish(record, f"{exc.message}; the running model stays")
        except Exception as exc:  # CTranslate2 and the tokenizer raise assorted types
            return self._finish(record, f"{type(exc).__name__}: {exc}; the running model stays")
        unloaded = self.models.switch(settings, names, compute_type, staged)
        self._on_loaded()
        log.info("model swap: now serving %s (%s); unloaded %s", names.default_id, compute_type,
                 ", ".join(unloaded) or "nothing")  # fmt: skip
        return self._finish(record, None)

    def _load(self, settings: Settings, names: ModelNames, compute_type: str) -> list[LoadedModel]:
        """The models the new settings need that are not loaded as they need them."""
        wanted = [names.default_id]
        interim = (settings.live.interim_model or "").strip()
        if interim and interim != names.default_id:
            wanted.append(names.canonical_id(interim))
        staged = []
        for mid in wanted:
            current = self.models.current(mid)
            if (
                current is not None
                and current.compute_type == compute_type
                and (mid != names.default_id or _same_source(current, names))
            ):
                continue  # already loaded as wanted: kept as it is
            staged.append(self.models.load_detached(names, mid, compute_type))
        return staged

    def _set(self, record: SwapRecord) -> None:
        with self._lock:
            self._record = record

    def _finish(self, record: SwapRecord, error: str | None) -> SwapRecord:
        done = replace(record, state="failed" if error else "done", error=error,
                       finished_at=time.time())  # fmt: skip
        if error:
            log.error("model swap to %s failed: %s", record.model, error)
        self._set(done)
        return done


def _same_source(entry: LoadedModel, names: ModelNames) -> bool:
    """Whether the loaded `entry` is the model the new default names: the same directory,
    with the same files in it (the role may have put a new model there under the same name).
    A hub model is the cached snapshot it was loaded from."""
    try:
        source = names.operator_source()
    except APIError:
        return False
    if source.path is None:
        return True
    return str(source.path) == entry.source and files_stamp(source.path) == entry.files
