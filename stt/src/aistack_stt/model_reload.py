"""What a SIGHUP asks for: the model settings of the model env file, read again.

systemd reads a unit's EnvironmentFile once, when it starts the process; `systemctl reload`
only sends SIGHUP. So the server reads `model_env_file` itself (env_file.py, systemd's rules)
and builds the settings it would start with now: the start-up environment with that file's
variables in place of its old ones, and the command line's flags on top as at start (a flag
still wins). Of those settings only the model settings (`RELOADABLE`) change while running
(model_swap.py); any other setting the file changes is named in `restart_needed`, to be
applied by a restart, and logged.

A variable removed from the file goes back to its default, as it would at the next start.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from .config import ENV_PREFIX, Settings, leaves, load_settings
from .config_options import ConfigError
from .env_file import read_env_file

# The settings a running server changes on SIGHUP (their leaf keys); everything else of the
# tree needs a restart (the device, for one: a different GPU guard and lane layout).
RELOADABLE = ("model", "compute_type", "interim_model")
_RELOADABLE_ENV = {ENV_PREFIX + key.upper() for key in RELOADABLE}


@dataclass(frozen=True)
class ModelPlan:
    """The running settings with the file's model settings, and what only a restart applies."""

    settings: Settings
    restart_needed: tuple[str, ...] = ()


def _value(settings: Settings, path: tuple[str, ...]) -> object:
    node: object = settings
    for name in path:
        node = getattr(node, name)
    return node


def read_plan(
    path: Path | None,
    running: Settings,
    overrides: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ModelPlan:
    """The model settings `path` names now, over `running`. Without a file: `running` as is.

    Raises OSError when the file cannot be read and ConfigError (every wrong value named)
    when it holds something the server would refuse at start; nothing changes then."""
    if path is None:
        return ModelPlan(running)
    environ = os.environ if environ is None else environ
    try:
        values = read_env_file(path)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not text: {exc}") from None
    unknown = sorted(n for n in values if n.startswith(ENV_PREFIX) and n not in _known())
    if unknown:
        raise ConfigError(f"{path}: {', '.join(unknown)} is not a setting of aistack-stt")
    start = {k: v for k, v in environ.items() if k not in _RELOADABLE_ENV}
    wanted = load_settings(overrides, {**start, **values})
    restart = [
        leaf.env
        for leaf in leaves()
        if leaf.key not in RELOADABLE and _value(wanted, leaf.path) != _value(running, leaf.path)
    ]
    # Other variables (HF_HUB_OFFLINE, ...) reach the libraries only through the process
    # environment, which a running process keeps.
    restart += sorted(
        name
        for name, value in values.items()
        if not name.startswith(ENV_PREFIX) and environ.get(name) != value
    )
    settings = replace(
        running,
        model=wanted.model,
        compute_type=wanted.compute_type,
        live=replace(running.live, interim_model=wanted.live.interim_model),
    )
    return ModelPlan(settings, tuple(restart))


def _known() -> set[str]:
    return {leaf.env for leaf in leaves()}
