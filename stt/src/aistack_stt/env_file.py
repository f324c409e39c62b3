"""Reading a systemd EnvironmentFile the way systemd does: `aistack-stt check --env-file`
checks one before it replaces the live file, and `serve` reads its model file again on SIGHUP
(model_reload.py)."""

from __future__ import annotations

from pathlib import Path

from .config_options import ConfigError


def read_env_file(path: Path) -> dict[str, str]:
    """NAME=VALUE lines as systemd reads them (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"{path}:{number}: expected NAME=VALUE, got {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[name.strip()] = value
    return values
