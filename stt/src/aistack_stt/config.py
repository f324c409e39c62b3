"""The settings tree: every knob of the server, read from flags and AISTACK_STT_* variables.

`Settings` holds the server and model settings and six sub-trees (config_subtrees.py,
config_live.py), `scheduler` (lanes, batching, backpressure), `stream` (live sessions),
`wyoming` (the Wyoming server), `vram` (sharing the GPU with Ollama), `tts` (speech synthesis)
and `live` (gRPC, decode profiles, the interim model, languages, capture). Every leaf is a flag
of `aistack-stt serve` and an environment variable, and carries what it allows
(`_opt(5, "beam size", ge=1)`, `choices=...`); the CLI flags, `known_variables()` (what
`aistack-stt check` accepts) and the settings table in stt/README.md (`markdown_table()`) are
derived from the tree, never retyped.

One loader (`load_settings`, config_loader.py): flags win over the environment, the
environment over the defaults, and an empty value means unset, i.e. the default. Each node is
checked when it is built, by one loop over its leaves (config_options.py); a `ConfigError`
names every wrong value and what is allowed. Nothing here imports the decoder, so `check`
stays fast.

A new setting is one `_opt(...)` line with its bounds; a new sub-tree is a frozen dataclass
subclassing `Checked` with a `label` (its variables' prefix) and a field
`name: Cls = subtree(Cls)` in `Settings`: the loader, the flags, `check` and the README table
find it without a list to register it in.

The imports are absolute: tests/unit/test_stt_engine_lists.py loads this file by path.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from aistack_stt.client_limits import check_proxies
from aistack_stt.compute import COMPUTE_TYPES, DEVICES
from aistack_stt.config_live import LiveSettings
from aistack_stt.config_loader import ENV_PREFIX, Leaf, load
from aistack_stt.config_loader import leaves as _leaves
from aistack_stt.config_options import AUTOMATIC, Checked, subtree
from aistack_stt.config_options import ConfigError as ConfigError  # the public face
from aistack_stt.config_options import option as _opt
from aistack_stt.config_subtrees import (
    SchedulerSettings,
    StreamLimits,
    TtsSettings,
    VramSettings,
    WyomingSettings,
)
from aistack_stt.config_vocabulary import VocabularySettings

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
RESPONSE_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")
CLIENT_MODELS = ("local", "hub", "any")


def _default_model_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aistack-stt" / "models"


def _codes(values: tuple[str, ...]) -> str:
    return ", ".join(f"`{v}`" for v in values)


def _not_blank(name: str, value: str) -> str | None:
    if value.strip():
        return None
    return f"{name} is empty; give an alias (e.g. base), a hub repo id or a directory"


@dataclass(frozen=True)
class Settings(Checked):
    host: str = _opt("0.0.0.0", "address to listen on")  # noqa: S104 (a server's default)
    port: int = _opt(8000, "TCP port", ge=1, le=65535)
    model: str = _opt(
        "base",
        "default model id (see [Models](#models)); what `whisper-1` means; loaded at start",
        check=_not_blank,
    )
    model_dir: Path = _opt(
        _default_model_dir,
        "where model directories are looked up and hub downloads are kept",
        shown="`$XDG_CACHE_HOME/aistack-stt/models` (`~/.cache/...`)",
    )
    model_env_file: Path | None = _opt(
        None,
        "an environment file (the unit's second `EnvironmentFile`) holding the model settings "
        "`AISTACK_STT_MODEL`, `AISTACK_STT_COMPUTE_TYPE`, `AISTACK_STT_INTERIM_MODEL`: on "
        "SIGHUP (`systemctl reload`) the server reads it again and switches to what it names "
        "once that is loaded and warmed up, serving with the old model until then "
        "(see [Changing the model without a restart](#changing-the-model-without-a-restart)); "
        "unset: SIGHUP loads the start-up settings again",
    )
    client_models: str = _opt(
        "local",
        "which models clients may name: `local` the default model (`whisper-1`) and what "
        "is already in the model directory; `hub` also aliases and hub repo ids, downloaded on "
        "first use; `any` also directories on the server by path (trusted clients only)",
        choices=CLIENT_MODELS,
    )
    device: str = _opt(
        "auto",
        "`auto` (CUDA when a GPU is visible, else CPU), " + _codes(DEVICES[1:]),
        choices=DEVICES,
    )
    compute_type: str = _opt(
        "default",
        "`default`/`auto` (int8 on CPU, float16 on CUDA), " + _codes(COMPUTE_TYPES[2:]),
        choices=COMPUTE_TYPES,
    )
    api_key: str | None = _opt(
        None,
        "when set, every endpoint except `/health` and `/health/ready` needs "
        "`Authorization: Bearer <key>`",
        repr=False,
    )
    model_ttl: int = _opt(
        -1,
        "seconds a model may sit idle before it is unloaded (memory goes back, e.g. to Ollama "
        "on a shared GPU); `-1` never, `0` right after each use. Applies to every model, the "
        "default included; an unloaded model loads again on its next use",
        ge=-1,
        means={-1: "never"},
    )
    language: str | None = _opt(
        None,
        "default spoken language (ISO 639-1, e.g. `de`) when a request names none; unset: detect",
    )
    beam_size: int = _opt(5, "beam size for decoding", ge=1)
    cpu_threads: int = _opt(
        0,
        "CTranslate2 threads per model on CPU (the bulk lane shares them out among its "
        "workers); `0` lets CTranslate2 choose (bulk lane: the usable cores)",
        ge=0,
        means=AUTOMATIC,
    )
    max_upload_mb: float = _opt(
        25.0,
        "largest accepted upload, in MiB (413 above it, counted as the body arrives, with or "
        "without Content-Length)",
        gt=0,
        unit="MiB",
    )
    max_connections: int = _opt(
        0,
        "HTTP and WebSocket connections open at once; the next is answered 503 "
        "`too_many_connections` and closed. `0`: from the open-file limit (raised to the hard "
        "limit at start): (limit - 64 - `wyoming_max_connections`) / 2",
        ge=0,
        means=AUTOMATIC,
    )
    header_timeout_s: float = _opt(
        10.0,
        "a connection that has not sent its request headers within this is closed",
        gt=0,
        le=3600,
        unit="seconds",
    )
    max_connections_per_client: int = _opt(
        0,
        "HTTP and WebSocket connections one client address may hold open; the next is "
        "answered 503 `too_many_connections`. `0`: a quarter of `max_connections` (8 or "
        "more). Wyoming allows half of `wyoming_max_connections` (2 or more) per address",
        ge=0,
        means=AUTOMATIC,
    )
    trusted_proxies: str = _opt(
        "",
        "addresses or CIDRs of reverse proxies (the front door), comma-separated, whose "
        "`X-Real-IP`/`X-Forwarded-For` names the client: their requests count per that "
        "client and the log shows it; empty: none",
        shown="empty",
        check=check_proxies,
    )
    max_audio_s: float = _opt(
        1800.0,  # 16 kHz float32: 115 MB at 1800 s
        "longest audio one upload may decode to, in seconds (413 `audio_too_long`, checked "
        "while decoding: a small compressed file cannot unpack to hours)",
        ge=1,
        le=86400,
        unit="seconds",
    )
    max_decodes: int = _opt(
        2,
        "uploads decoded at once (each may hold `max_audio_s` of 16 kHz float32); more wait "
        "for a turn, and past `AISTACK_STT_MAX_QUEUE` waiting they get 503 `queue_full`",
        ge=1,
    )
    upload_timeout_s: float = _opt(
        300.0,
        "seconds the whole request body may take to arrive (408 `upload_timeout` and the "
        "connection is closed: a client trickling bytes cannot hold it open)",
        gt=0,
        unit="seconds",
    )
    shutdown_timeout_s: float = _opt(
        5.0,
        "on SIGTERM, seconds open requests and live sessions get to finish before they are cut off",
        ge=0,
        le=600,
        unit="seconds",
    )
    log_level: str = _opt("info", _codes(LOG_LEVELS), choices=LOG_LEVELS, fold_case=True)
    scheduler: SchedulerSettings = subtree(SchedulerSettings)
    stream: StreamLimits = subtree(StreamLimits)
    wyoming: WyomingSettings = subtree(WyomingSettings)
    vram: VramSettings = subtree(VramSettings)
    vocabulary: VocabularySettings = subtree(VocabularySettings)
    tts: TtsSettings = subtree(TtsSettings)
    live: LiveSettings = subtree(LiveSettings)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def leaves() -> Iterator[Leaf]:
    """Every setting of the tree, depth first, in declaration order."""
    return _leaves(Settings)


def known_variables() -> set[str]:
    """Every AISTACK_STT_* name the server reads."""
    return {leaf.env for leaf in leaves()}


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper()


def load_settings(
    overrides: Mapping[str, object] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """The settings from defaults, AISTACK_STT_* variables and flags (`overrides`, by key).

    Every wrong value is reported, not just the first: the `ConfigError` lists them all in
    `problems` (its message is the first).
    """
    return load(Settings, overrides, environ)


def with_env(settings: Settings, environ: Mapping[str, str]) -> Settings:
    """`settings` with the scheduler and stream sub-trees read from `environ` (tests, tools)."""
    loaded = load_settings(environ=environ)
    return replace(settings, scheduler=loaded.scheduler, stream=loaded.stream)


def markdown_table() -> str:
    """The settings table of stt/README.md, generated from the tree (a test keeps them equal)."""
    rows = ["| flag | environment | default | meaning |", "|---|---|---|---|"]
    for leaf in leaves():
        rows.append(f"| `{leaf.flag}` | `{leaf.env}` | {leaf.default_text()} | {leaf.help} |")
    return "\n".join(rows)
