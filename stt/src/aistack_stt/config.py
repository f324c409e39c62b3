"""The settings tree: every knob of the server, read from flags and AISTACK_STT_* variables.

`Settings` holds the server and model settings and four sub-trees, `scheduler` (lanes,
batching, backpressure), `stream` (live sessions), `wyoming` (the Wyoming server) and `vram`
(sharing the GPU with Ollama). Every
leaf is a flag of `aistack-stt serve` and an environment variable; the CLI flags,
`known_variables()` (what `aistack-stt check` accepts) and the settings table in
stt/README.md (`markdown_table()`) are derived from the tree, never retyped.

One loader (`load_settings`) with one rule: flags win over the environment, the environment
over the defaults, and an empty value (a flag or variable set to "") means unset, i.e. the
default. Values are checked when each dataclass is built; a wrong one is a `ConfigError`
naming it and what is allowed. Nothing here imports the decoder, so `check` stays fast.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path

ENV_PREFIX = "AISTACK_STT_"
DEVICES = ("auto", "cpu", "cuda")
# What CTranslate2 accepts; "default" and "auto" pick int8 on CPU, float16 on CUDA.
COMPUTE_TYPES = (
    "default",
    "auto",
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
)
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
RESPONSE_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")
SEPARATE_LANES = ("auto", "always", "never")
CLIENT_MODELS = ("local", "hub", "any")
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


class ConfigError(ValueError):
    """A setting a user gave is wrong; the message names it and says what is allowed.

    `problems` holds one line per wrong setting when several were found at once.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


def _default_model_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aistack-stt" / "models"


def _codes(values: tuple[str, ...]) -> str:
    return ", ".join(f"`{v}`" for v in values)


def _opt(default, help: str, shown: str | None = None, **kw):  # noqa: A002 (argparse's name)
    """A leaf of the tree: its default, its one-line meaning, how the README shows the default."""
    meta = {"help": help, "shown": shown}
    if callable(default) and not isinstance(default, type):
        return field(default_factory=default, metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass(frozen=True)
class SchedulerSettings:
    """Lanes, batching and backpressure (scheduling/)."""

    short_audio_s: float = _opt(15.0, "audio up to this long (seconds) uses the hot lane")
    max_batch: int = _opt(
        4, "windows per CTranslate2 call (bench/stt_batching.py: 8 was slower on CPU)"
    )
    max_queue: int = _opt(512, "requests admitted (waiting or running) before 503 `queue_full`")
    request_timeout_s: float = _opt(900.0, "deadline per request in seconds (504 after it)")
    bulk_nice: int = _opt(10, "CPU priority of the bulk lane (0: share the cores evenly)")
    bulk_workers: int = _opt(
        0,
        "bulk batches decoded side by side; `0` automatic: one per core (or per "
        "`AISTACK_STT_CPU_THREADS`), at most 4, on CPU; 1 on GPU",
    )
    batch_wait_s: float = _opt(
        0.25,
        "bulk lane: longest wait for a burst to arrive before batching (a lone file waits a "
        "fifth of it)",
    )
    separate_lanes: str = _opt(
        "auto",
        "`auto`: own bulk model copy on CPU only; `always`; `never` (one model for both lanes)",
    )

    def __post_init__(self) -> None:
        if self.short_audio_s < 0:
            raise ConfigError(f"short_audio_s {self.short_audio_s} is invalid; use seconds >= 0")
        if self.max_batch < 1:
            raise ConfigError(f"max_batch {self.max_batch} is invalid; use 1 or more")
        if self.max_queue < 1:
            raise ConfigError(f"max_queue {self.max_queue} is invalid; use 1 or more")
        if self.request_timeout_s <= 0:
            raise ConfigError(
                f"request_timeout_s {self.request_timeout_s} is invalid; use seconds > 0"
            )
        if not 0 <= self.bulk_nice <= 19:
            raise ConfigError(f"bulk_nice {self.bulk_nice} is invalid; use 0-19")
        if not 0 <= self.batch_wait_s <= 10:
            raise ConfigError(f"batch_wait_s {self.batch_wait_s} is invalid; use 0-10 seconds")
        if self.bulk_workers < 0:
            raise ConfigError(
                f"bulk_workers {self.bulk_workers} is invalid; use 0 (automatic) or more"
            )
        if self.separate_lanes not in SEPARATE_LANES:
            raise ConfigError(
                f"separate_lanes {self.separate_lanes!r} is not one of {', '.join(SEPARATE_LANES)}"
            )


@dataclass(frozen=True)
class StreamLimits:
    """Limits of live sessions (live/); variables AISTACK_STT_STREAM_*."""

    max_sessions: int = _opt(16, "live sessions at once (close 1013 `too_many_sessions` above)")
    max_frame_bytes: int = _opt(
        256 * 1024, "largest audio frame (close 1009 `frame_too_large`); 8 s of audio"
    )
    idle_timeout_s: float = _opt(
        30.0, "no message for this long while nothing is being transcribed ends the session"
    )
    max_utterance_s: float = _opt(
        30.0, "an utterance longer than this (1-30 s) is finalised and continued as the next"
    )
    max_sessions_per_client: int = _opt(
        4,
        "live sessions at once from one client address (close 1013 `too_many_sessions`); "
        "behind a reverse proxy every client has the proxy's address",
    )

    def __post_init__(self) -> None:
        for name in ("max_sessions", "max_frame_bytes", "max_sessions_per_client"):
            if getattr(self, name) < 1:
                raise ConfigError(f"stream {name} {getattr(self, name)} is invalid; use 1 or more")
        if self.idle_timeout_s <= 0:
            raise ConfigError(f"stream idle_timeout_s {self.idle_timeout_s} must be > 0")
        if not 1 <= self.max_utterance_s <= 30:
            raise ConfigError(
                f"stream max_utterance_s {self.max_utterance_s} is invalid; use 1-30 seconds"
            )


@dataclass(frozen=True)
class WyomingSettings:
    """The Wyoming server (wyoming/): where it listens and how much one connection may ask of
    it; variables AISTACK_STT_WYOMING_*."""

    enabled: bool = _opt(
        True, "serve Wyoming (Home Assistant) beside the HTTP API; `false`: no port is opened"
    )
    host: str = _opt("0.0.0.0", "address the Wyoming server listens on")  # noqa: S104
    port: int = _opt(
        10300,  # the port Home Assistant's Wyoming integration suggests for STT
        "TCP port of the Wyoming server; a port that cannot be bound stops the server at start "
        "(`0`: any free port)",
    )
    max_connections: int = _opt(
        16, "open Wyoming connections; the next one gets an `error` event and is closed"
    )
    max_audio_s: float = _opt(
        120.0,  # kept as 16 kHz float32: 7.7 MB at 120 s
        "seconds of audio one Wyoming request may send (1-3600; kept as 16 kHz float32, 7.7 MB "
        "at 120 s, whatever the client's format)",
    )
    max_event_bytes: int = _opt(
        1024 * 1024, "largest header line, data block and payload of one Wyoming event, each"
    )
    idle_timeout_s: float = _opt(
        60.0, "a Wyoming connection that sends nothing (or reads nothing) for this long is closed"
    )
    # Wyoming has no authentication, so this is its only gate besides the network.
    allow: str = _opt(
        "",
        "source networks allowed to connect over Wyoming, comma-separated CIDRs "
        "(`192.168.1.0/24,10.100.10.0/24`); empty: anyone who reaches the port",
        shown="empty",
    )

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:
            raise ConfigError(
                f"wyoming port {self.port} is out of range; use 1-65535 (0: any free port)"
            )
        if self.max_connections < 1:
            raise ConfigError(
                f"wyoming max_connections {self.max_connections} is invalid; use 1 or more"
            )
        if not 1 <= self.max_audio_s <= 3600:
            raise ConfigError(
                f"wyoming max_audio_s {self.max_audio_s} is invalid; use 1-3600 seconds"
            )
        if self.max_event_bytes < 4096:
            raise ConfigError(
                f"wyoming max_event_bytes {self.max_event_bytes} is invalid; use 4096 or more"
            )
        if self.idle_timeout_s <= 0:
            raise ConfigError(
                f"wyoming idle_timeout_s {self.idle_timeout_s} is invalid; use seconds > 0"
            )
        self.networks()  # a wrong network fails at start, naming itself

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        networks = []
        for item in filter(None, (part.strip() for part in self.allow.split(","))):
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ConfigError(
                    f"wyoming allow: {item!r} is not a network; use CIDRs such as "
                    "192.168.1.0/24, separated by commas"
                ) from None
        return networks

    def allows(self, address: str) -> bool:
        """Whether a client at `address` may connect (always, when `allow` is empty)."""
        networks = self.networks()
        if not networks:
            return True
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in networks)


@dataclass(frozen=True)
class VramSettings:
    """Sharing one GPU with Ollama (vram/): what is checked before a model loads on CUDA;
    variables AISTACK_STT_VRAM_*."""

    guard: bool = _opt(
        True,
        "on CUDA, read free GPU memory (NVML) before a model loads and make room: first this "
        "server's idle models, then idle Ollama models; 503 `insufficient_vram` when there is "
        "still too little. `false`: load and let CUDA fail",
    )
    ollama_url: str = _opt(
        "",
        "the Ollama on the same GPU (`http://127.0.0.1:11434`), asked to unload idle models "
        "(`keep_alive: 0`) when room is short; empty: Ollama is not asked",
        shown="empty",
    )
    margin_mb: int = _opt(
        512, "MiB kept free on top of a model's estimated need (see [GPU memory](#gpu-memory))"
    )
    wait_s: float = _opt(
        15.0, "seconds to wait for the memory Ollama gives back to show up as free (0-300)"
    )

    def __post_init__(self) -> None:
        url = self.ollama_url.strip()
        if url and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
            raise ConfigError(
                f"vram ollama_url {self.ollama_url!r} is not an http(s) URL; use "
                "http://HOST:11434, or leave it empty"
            )
        if self.margin_mb < 0:
            raise ConfigError(f"vram margin_mb {self.margin_mb} is invalid; use MiB >= 0")
        if not 0 <= self.wait_s <= 300:
            raise ConfigError(f"vram wait_s {self.wait_s} is invalid; use 0-300 seconds")


@dataclass(frozen=True)
class Settings:
    host: str = _opt("0.0.0.0", "address to listen on")  # noqa: S104 (a server's default)
    port: int = _opt(8000, "TCP port")
    model: str = _opt(
        "base",
        "default model id (see [Models](#models)); what `whisper-1` means; loaded at start",
    )
    model_dir: Path = _opt(
        _default_model_dir,
        "where model directories are looked up and hub downloads are kept",
        shown="`$XDG_CACHE_HOME/aistack-stt/models` (`~/.cache/...`)",
    )
    client_models: str = _opt(
        "local",
        "which models clients may name: `local` the default model (`whisper-1`) and what "
        "is already in the model directory; `hub` also aliases and hub repo ids, downloaded on "
        "first use; `any` also directories on the server by path (trusted clients only)",
    )
    device: str = _opt(
        "auto", "`auto` (CUDA when a GPU is visible, else CPU), " + _codes(DEVICES[1:])
    )
    compute_type: str = _opt(
        "default",
        "`default`/`auto` (int8 on CPU, float16 on CUDA), " + _codes(COMPUTE_TYPES[2:]),
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
    )
    language: str | None = _opt(
        None,
        "default spoken language (ISO 639-1, e.g. `de`) when a request names none; unset: detect",
    )
    beam_size: int = _opt(5, "beam size for decoding")
    cpu_threads: int = _opt(
        0,
        "CTranslate2 threads per model on CPU (the bulk lane shares them out among its "
        "workers); `0` lets CTranslate2 choose (bulk lane: the usable cores)",
    )
    max_upload_mb: float = _opt(
        25.0,
        "largest accepted upload, in MiB (413 above it, counted as the body arrives, with or "
        "without Content-Length)",
    )
    max_connections: int = _opt(
        0,
        "HTTP and WebSocket connections open at once; the next is answered 503 "
        "`too_many_connections` and closed. `0`: from the open-file limit (raised to the hard "
        "limit at start): (limit - 64 - `wyoming_max_connections`) / 2",
    )
    header_timeout_s: float = _opt(
        10.0, "a connection that has not sent its request headers within this is closed"
    )
    max_connections_per_client: int = _opt(
        0,
        "HTTP and WebSocket connections one client address may hold open; the next is "
        "answered 503 `too_many_connections`. `0`: a quarter of `max_connections` (8 or "
        "more). Wyoming allows half of `wyoming_max_connections` (2 or more) per address",
    )
    trusted_proxies: str = _opt(
        "",
        "addresses or CIDRs of reverse proxies (the front door), comma-separated, whose "
        "`X-Real-IP`/`X-Forwarded-For` names the client: their requests count per that "
        "client and the log shows it; empty: none",
        shown="empty",
    )
    max_audio_s: float = _opt(
        1800.0,  # 16 kHz float32: 115 MB at 1800 s
        "longest audio one upload may decode to, in seconds (413 `audio_too_long`, checked "
        "while decoding: a small compressed file cannot unpack to hours)",
    )
    max_decodes: int = _opt(
        2,
        "uploads decoded at once (each may hold `max_audio_s` of 16 kHz float32); more wait "
        "for a turn, and past `AISTACK_STT_MAX_QUEUE` waiting they get 503 `queue_full`",
    )
    upload_timeout_s: float = _opt(
        300.0,
        "seconds the whole request body may take to arrive (408 `upload_timeout` and the "
        "connection is closed: a client trickling bytes cannot hold it open)",
    )
    shutdown_timeout_s: float = _opt(
        5.0,
        "on SIGTERM, seconds open requests and live sessions get to finish before they are cut off",
    )
    log_level: str = _opt("info", _codes(LOG_LEVELS))
    scheduler: SchedulerSettings = field(default_factory=SchedulerSettings)
    stream: StreamLimits = field(default_factory=StreamLimits, metadata={"env": "STREAM_"})
    wyoming: WyomingSettings = field(default_factory=WyomingSettings, metadata={"env": "WYOMING_"})
    vram: VramSettings = field(default_factory=VramSettings, metadata={"env": "VRAM_"})

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ConfigError(f"device {self.device!r} is not one of {', '.join(DEVICES)}")
        if self.compute_type not in COMPUTE_TYPES:
            raise ConfigError(
                f"compute_type {self.compute_type!r} is not one of {', '.join(COMPUTE_TYPES)}"
            )
        if not 0 < self.port < 65536:
            raise ConfigError(f"port {self.port} is out of range; use 1-65535")
        if self.model_ttl < -1:
            raise ConfigError(
                f"model_ttl {self.model_ttl} is invalid; use seconds >= 0, or -1 for never"
            )
        if not self.model.strip():
            raise ConfigError(
                "model is empty; give an alias (e.g. base), a hub repo id or a directory"
            )
        if self.client_models not in CLIENT_MODELS:
            raise ConfigError(
                f"client_models {self.client_models!r} is not one of {', '.join(CLIENT_MODELS)}"
            )
        if self.beam_size < 1:
            raise ConfigError(f"beam_size {self.beam_size} is invalid; use 1 or more")
        if self.cpu_threads < 0:
            raise ConfigError(
                f"cpu_threads {self.cpu_threads} is invalid; use 0 (automatic) or more"
            )
        if self.max_upload_mb <= 0:
            raise ConfigError(
                f"max_upload_mb {self.max_upload_mb} is invalid; use a positive number"
            )
        if self.max_connections < 0:
            raise ConfigError(
                f"max_connections {self.max_connections} is invalid; use 0 (automatic) or more"
            )
        if self.max_connections_per_client < 0:
            raise ConfigError(
                f"max_connections_per_client {self.max_connections_per_client} is invalid; "
                "use 0 (automatic) or more"
            )
        for item in filter(None, (p.strip() for p in self.trusted_proxies.split(","))):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ConfigError(
                    f"trusted_proxies: {item!r} is not an address or network; use addresses "
                    "or CIDRs such as 10.100.10.11 or 10.100.10.0/24, separated by commas"
                ) from None
        if not 0 < self.header_timeout_s <= 3600:
            raise ConfigError(
                f"header_timeout_s {self.header_timeout_s} is invalid; use seconds, 0-3600"
            )
        if not 1 <= self.max_audio_s <= 86400:
            raise ConfigError(f"max_audio_s {self.max_audio_s} is invalid; use 1-86400 seconds")
        if self.max_decodes < 1:
            raise ConfigError(f"max_decodes {self.max_decodes} is invalid; use 1 or more")
        if self.upload_timeout_s <= 0:
            raise ConfigError(
                f"upload_timeout_s {self.upload_timeout_s} is invalid; use seconds > 0"
            )
        if not 0 <= self.shutdown_timeout_s <= 600:
            raise ConfigError(
                f"shutdown_timeout_s {self.shutdown_timeout_s} is invalid; use 0-600 seconds"
            )
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"log_level {self.log_level!r} is not one of {', '.join(LOG_LEVELS)}")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


# -- the leaves of the tree ---------------------------------------------------------------

_KINDS: dict[str, Callable[[str], object]] = {
    "int": int,
    "float": float,
    "str": str,
    "str | None": str,
    "Path": Path,
}


@dataclass(frozen=True)
class Leaf:
    """One setting: where it sits in the tree and the names users give it."""

    path: tuple[str, ...]  # ("scheduler", "max_queue")
    key: str  # "max_queue": the flag's dest and the override key
    env: str  # "AISTACK_STT_MAX_QUEUE"
    flag: str  # "--max-queue"
    kind: str  # the annotation: int, float, bool, str, str | None, Path
    default: object
    help: str
    shown: str | None

    def convert(self, raw: str, source: str) -> object:
        if self.kind == "bool":
            if raw.lower() in _TRUE:
                return True
            if raw.lower() in _FALSE:
                return False
            raise ConfigError(f"{source}={raw!r} is not a boolean; use true or false")
        kind = _KINDS[self.kind]
        try:
            return kind(raw)
        except ValueError:
            raise ConfigError(f"{source}={raw!r} is not a number") from None

    def default_text(self) -> str:
        if self.shown is not None:
            return self.shown
        if self.default is None:
            return "unset"
        value = self.default
        if isinstance(value, bool):
            return f"`{str(value).lower()}`"
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return f"`{value}`"


def leaves(cls: type = Settings, prefix: str = "", path: tuple[str, ...] = ()) -> Iterator[Leaf]:
    """Every setting of the tree, depth first, in declaration order."""
    for f in fields(cls):
        sub = f.metadata.get("env", "")
        if f.type in _SUBTREES:
            yield from leaves(_SUBTREES[f.type], prefix + sub, (*path, f.name))
            continue
        key = (prefix + f.name).lower()
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        yield Leaf(
            path=(*path, f.name),
            key=key,
            env=ENV_PREFIX + key.upper(),
            flag="--" + key.replace("_", "-"),
            kind=str(f.type),
            default=default,
            help=f.metadata["help"],
            shown=f.metadata.get("shown"),
        )


_SUBTREES: dict[str, type] = {
    "SchedulerSettings": SchedulerSettings,
    "StreamLimits": StreamLimits,
    "WyomingSettings": WyomingSettings,
    "VramSettings": VramSettings,
}
# The sub-trees by their field in `Settings`.
_PARTS: dict[str, type] = {
    "scheduler": SchedulerSettings,
    "stream": StreamLimits,
    "wyoming": WyomingSettings,
    "vram": VramSettings,
}


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
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    values: dict[tuple[str, ...], object] = {}
    problems: list[str] = []
    for leaf in leaves():
        raw, source = environ.get(leaf.env), leaf.env
        flag = overrides.get(leaf.key)
        if flag is not None and not (isinstance(flag, str) and not flag.strip()):
            raw, source = flag, leaf.flag
        elif flag is not None:  # an empty flag unsets what the environment says
            raw = None
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue  # empty means unset: the default
        if isinstance(raw, str):
            raw = raw.strip()
            if leaf.key == "log_level":
                raw = raw.lower()
            try:
                values[leaf.path] = leaf.convert(raw, source)
            except ConfigError as exc:
                problems.append(str(exc))
        else:
            values[leaf.path] = raw
    parts: dict[str, object] = {}
    for name, cls in _PARTS.items():
        mine = {p[1]: v for p, v in values.items() if p[0] == name}
        try:
            parts[name] = cls(**mine)
        except ConfigError as exc:
            problems.append(str(exc))
    top = {p[0]: v for p, v in values.items() if len(p) == 1}
    settings = None
    if len(parts) == len(_PARTS):
        try:
            settings = Settings(**top, **parts)  # type: ignore[arg-type]
        except ConfigError as exc:
            problems.append(str(exc))
    else:  # still check the top level, so every problem is named in one go
        try:
            Settings(**top)  # type: ignore[arg-type]
        except ConfigError as exc:
            problems.append(str(exc))
    if problems or settings is None:
        raise ConfigError(problems[0], problems)
    return settings


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
