"""Type readers: turn one YAML value into the typed value the model wants, or report why not.

A reader never raises and never stops the run: a wrong value goes to the ``error``
callback with its key path, and the reader hands back a default so that the checks
after it still see something usable. Defaults come from the schema tables through
``Section``; a reader given no default returns None for a missing value.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .loader import KeyPath, Vault
from .schema import SECTIONS, default

Error = Callable[[KeyPath, str], None]

_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_CONFIG_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")
_IMAGE = re.compile(r"^[^:\s]+:\S+$")


def yaml_type(value: object) -> str:
    """The kind of a YAML value in the words an error message uses."""
    names = {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "empty (null)",
        Vault: "a !vault value (allowed only in a machine's vars)",
    }
    return names.get(type(value), type(value).__name__)


def switched_on(section: str, data: dict, path: KeyPath, error: Error) -> bool:
    """A section's `enabled` key (default from the schema tables); False when off or wrong."""
    enabled = data.get("enabled", default(section, "enabled"))
    if not isinstance(enabled, bool):
        error(path + ("enabled",), f"must be true or false, not {enabled!r}")
        return False
    return enabled


def usable_name(name: object) -> bool:
    """Whether ``name`` can name an Incus profile or device."""
    return isinstance(name, str) and _PROFILE_NAME.fullmatch(name) is not None


@dataclass(frozen=True)
class Reader:
    """The readers of one validation run: where problems go, where relative paths start."""

    error: Error
    base_dir: Path

    def section(self, value: Any, path: KeyPath, name: str) -> Section | None:
        """``value`` as section ``name`` of the schema: a mapping with only its keys.

        Unknown keys and missing required keys are reported; the known keys are kept.
        """
        fields = SECTIONS[name]
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping, not {yaml_type(value)}")
            return None
        allowed = [f.name for f in fields]
        for key in value:
            if key not in allowed:
                self.error(path + (str(key),), _unknown_key(str(key), allowed))
        for f in fields:
            if f.required and value.get(f.name) is None:
                self.error(path + (f.name,), f"is required; add {f.name} ({f.kind}) here")
        return Section(name, path, {k: v for k, v in value.items() if k in allowed}, self)

    def string(self, value: Any, path: KeyPath, default: str | None = None) -> str | None:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.error(path, f"must be a string, not {yaml_type(value)}")
            return default
        return str(value)

    def image(self, value: Any, path: KeyPath) -> str | None:
        """An image as ``<remote>:<alias>``; None when missing or wrong (reported)."""
        text = self.string(value, path)
        if text is not None and not _IMAGE.fullmatch(text):
            self.error(
                path,
                f"'{text}' names no remote; write <remote>:<alias>, like "
                "images:debian/12 or local:aistack/debian-12",
            )
            return None
        return text

    def boolean(self, value: Any, path: KeyPath, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(path, f"must be true or false, not {value!r}")
            return default
        return value

    def choice(self, value: Any, path: KeyPath, choices: tuple[str, ...], default: str) -> str:
        if value is None:
            return default
        if value not in choices:
            self.error(path, f"{value!r} is not one of: {', '.join(choices)}")
            return default
        return str(value)

    def name_list(self, value: Any, path: KeyPath) -> list[tuple[int, str]]:
        """A list of distinct names, each with its index (the key path of a later error)."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"must be a list of names, like [a, b], not {yaml_type(value)}")
            return []
        names: list[tuple[int, str]] = []
        seen: set[str] = set()
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.error(path + (index,), f"must be a name, not {yaml_type(item)}")
            elif item in seen:
                self.error(path + (index,), f"'{item}' is listed twice; remove one")
            else:
                seen.add(item)
                names.append((index, item))
        return names

    def config(self, value: Any, path: KeyPath) -> dict[str, str]:
        """Incus config: string keys, scalar values; values are sent to Incus as strings."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping of Incus config keys, not {yaml_type(value)}")
            return {}
        result: dict[str, str] = {}
        for key, item in value.items():
            where = path + (str(key),)
            if not isinstance(key, str) or not _CONFIG_KEY.fullmatch(key):
                self.error(where, f"'{key}' is not an Incus config key (like limits.memory)")
            elif isinstance(item, dict | list) or item is None:
                self.error(where, f"must be a single value, not {yaml_type(item)}")
            else:
                result[key] = _incus_string(item)
        return result

    def devices(self, value: Any, path: KeyPath) -> dict[str, dict[str, str]]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping of device name to device, not {yaml_type(value)}")
            return {}
        result: dict[str, dict[str, str]] = {}
        for name, device in value.items():
            where = path + (str(name),)
            if not usable_name(name):
                self.error(where, f"'{name}' is not a usable device name")
                continue
            if not isinstance(device, dict):
                self.error(
                    where, f"must be a mapping with at least 'type', not {yaml_type(device)}"
                )
                continue
            if "type" not in device:
                self.error(where, "has no 'type'; add one, like type: disk, nic or gpu")
            result[name] = self.config(device, where)
        return result

    def existing_file(self, value: Any, path: KeyPath) -> str | None:
        """The absolute path of a file on this host; relative paths start at infra.yml's dir."""
        text = self.string(value, path)
        if text is None:
            return None
        resolved = (self.base_dir / text).resolve() if not Path(text).is_absolute() else Path(text)
        if not resolved.is_file():
            self.error(
                path,
                f"{resolved} does not exist on this host; give the path of an "
                "existing file (relative paths start at infra.yml's directory)",
            )
            return None
        return str(resolved)

    def plain_data(self, value: Any, path: KeyPath) -> bool:
        """Role variables are copied verbatim, so they must be data YAML writes back as is."""
        if isinstance(value, dict):
            return all([self.plain_data(v, path + (str(k),)) for k, v in value.items()])
        if isinstance(value, list):
            return all([self.plain_data(v, path + (i,)) for i, v in enumerate(value)])
        if value is None or isinstance(value, str | int | float | bool | Vault):
            return True
        self.error(
            path,
            f"{value!r} is {yaml_type(value)}, which is not copied into host_vars; "
            "quote it to make it a string",
        )
        return False


class Section(dict[str, Any]):
    """The known keys of one section of infra.yml, read with the schema's defaults.

    A mapping (``get`` is the dict's own: the validator calls it for every key of
    every machine) that also knows which section it is and where it stands.
    """

    __slots__ = ("name", "path", "read")

    def __init__(self, name: str, path: KeyPath, data: dict[str, Any], read: Reader) -> None:
        super().__init__(data)
        self.name = name
        self.path = path
        self.read = read

    def where(self, key: str) -> KeyPath:
        return self.path + (key,)

    def text(self, key: str) -> str:
        """The key as a string; missing, wrong or empty gives the schema's default.

        Only for keys whose default is a string; a key without one is read with
        ``Reader.string``, which keeps an empty string and gives None when missing.
        """
        fallback: str = default(self.name, key)
        return self.read.string(self.get(key), self.where(key), fallback) or fallback

    def boolean(self, key: str, fallback: bool | None = None) -> bool:
        """The key as a boolean; ``fallback`` replaces the schema's default where the
        default is inherited (a machine's ``ephemeral`` from its domain)."""
        value = default(self.name, key) if fallback is None else fallback
        return self.read.boolean(self.get(key), self.where(key), value)

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        return self.read.choice(self.get(key), self.where(key), choices, default(self.name, key))


def _incus_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _unknown_key(key: str, allowed: list[str]) -> str:
    import difflib  # error path only

    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}'; did you mean '{close[0]}'?"
    return f"unknown key '{key}'; allowed keys: {', '.join(allowed)}"
