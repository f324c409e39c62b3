"""Server settings: one typed value built from flags and AISTACK_STT_* environment variables.

Flags win over the environment, the environment over the defaults. Every name is documented
in stt/README.md; the stt_server role writes the environment variables into a systemd unit.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

ENV_PREFIX = "AISTACK_STT_"
DEVICES = ("auto", "cpu", "cuda")
# What CTranslate2 accepts; "default" keeps the type the model was converted with.
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


class ConfigError(ValueError):
    """A setting a user gave is wrong; the message names it and says what is allowed."""


def _default_model_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "aistack-stt" / "models"


@dataclass(frozen=True)
class Settings:
    host: str = "0.0.0.0"
    port: int = 8000
    model: str = "base"
    model_dir: Path = field(default_factory=_default_model_dir)
    device: str = "auto"
    compute_type: str = "default"
    api_key: str | None = None
    model_ttl: int = -1
    language: str | None = None
    beam_size: int = 5
    cpu_threads: int = 0
    max_upload_mb: float = 25.0
    log_level: str = "info"

    def __post_init__(self) -> None:
        _check(self)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def _check(s: Settings) -> None:
    if s.device not in DEVICES:
        raise ConfigError(f"device {s.device!r} is not one of {', '.join(DEVICES)}")
    if s.compute_type not in COMPUTE_TYPES:
        raise ConfigError(
            f"compute_type {s.compute_type!r} is not one of {', '.join(COMPUTE_TYPES)}"
        )
    if not 0 < s.port < 65536:
        raise ConfigError(f"port {s.port} is out of range; use 1-65535")
    if s.model_ttl < -1:
        raise ConfigError(f"model_ttl {s.model_ttl} is invalid; use seconds >= 0, or -1 for never")
    if not s.model.strip():
        raise ConfigError("model is empty; give an alias (e.g. base), a hub repo id or a directory")
    if s.beam_size < 1:
        raise ConfigError(f"beam_size {s.beam_size} is invalid; use 1 or more")
    if s.cpu_threads < 0:
        raise ConfigError(f"cpu_threads {s.cpu_threads} is invalid; use 0 (automatic) or more")
    if s.max_upload_mb <= 0:
        raise ConfigError(f"max_upload_mb {s.max_upload_mb} is invalid; use a positive number")
    if s.log_level not in LOG_LEVELS:
        raise ConfigError(f"log_level {s.log_level!r} is not one of {', '.join(LOG_LEVELS)}")


_CONVERTERS = {
    "port": int,
    "model_ttl": int,
    "beam_size": int,
    "cpu_threads": int,
    "max_upload_mb": float,
    "model_dir": Path,
}


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def load_settings(
    overrides: Mapping[str, object] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Combine defaults, AISTACK_STT_* variables and explicit overrides (flags), checked."""
    environ = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for f in fields(Settings):
        raw = environ.get(env_name(f.name))
        if raw is None:
            continue
        values[f.name] = _convert(f.name, raw, env_name(f.name))
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        values[name] = _convert(name, value, "--" + name.replace("_", "-"))
    # Empty strings mean "unset" for the optional values.
    for name in ("api_key", "language"):
        if values.get(name) == "":
            values[name] = None
    if isinstance(values.get("log_level"), str):
        values["log_level"] = str(values["log_level"]).lower()
    return Settings(**values)  # type: ignore[arg-type]


def _convert(name: str, raw: object, source: str) -> object:
    conv = _CONVERTERS.get(name)
    if conv is None or not isinstance(raw, str):
        return raw
    try:
        return conv(raw.strip())
    except ValueError:
        kind = "a number" if conv in (int, float) else "a path"
        raise ConfigError(f"{source}={raw!r} is not {kind}") from None
