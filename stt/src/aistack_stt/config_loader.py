"""Walking the settings tree: its leaves (the names users give them) and the one loader.

`leaves(root)` lists every setting of a tree of `Checked` dataclasses with its flag, its
AISTACK_STT_* variable and its help; the CLI, `aistack-stt check` and the README table read
them from here. `load(root, ...)` reads the values with one rule: flags win over the
environment, the environment over the defaults, and an empty value (a flag or variable set
to "") means unset, i.e. the default. Every wrong value is reported at once.

Standard library only; nothing here knows which settings exist (config.py does).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, dataclass, fields, is_dataclass
from pathlib import Path

from .config_options import ConfigError

ENV_PREFIX = "AISTACK_STT_"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_KINDS: dict[str, Callable[[str], object]] = {
    "int": int,
    "float": float,
    "str": str,
    "str | None": str,
    "Path": Path,
    "Path | None": Path,
}


@dataclass(frozen=True)
class Leaf:
    """One setting: where it sits in the tree and the names users give it."""

    path: tuple[str, ...]  # ("scheduler", "max_queue")
    key: str  # "max_queue": the flag's dest and the override key
    env: str  # "AISTACK_STT_MAX_QUEUE"
    flag: str  # "--max-queue"
    kind: str  # the annotation: int, float, bool, str, str | None, Path, Path | None
    default: object
    help: str
    shown: str | None
    fold_case: bool = False

    def convert(self, raw: str, source: str) -> object:
        if self.fold_case:
            raw = raw.lower()
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


def _node(f) -> type | None:
    """The dataclass a field holds when it is a sub-tree, else None."""
    factory = f.default_factory
    return factory if factory is not MISSING and is_dataclass(factory) else None


def leaves(root: type, prefix: str = "", path: tuple[str, ...] = ()) -> Iterator[Leaf]:
    """Every setting of the tree under `root`, depth first, in declaration order."""
    for f in fields(root):
        node = _node(f)
        if node is not None:
            yield from leaves(node, prefix + f.metadata.get("env", ""), (*path, f.name))
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
            fold_case=f.metadata.get("fold_case", False),
        )


def _raw(leaf: Leaf, overrides: Mapping[str, object], environ: Mapping[str, str]):
    """The value given for `leaf` and where it came from; None when unset (empty: unset)."""
    raw, source = environ.get(leaf.env), leaf.env
    flag = overrides.get(leaf.key)
    if flag is not None and not (isinstance(flag, str) and not flag.strip()):
        raw, source = flag, leaf.flag
    elif flag is not None:  # an empty flag unsets what the environment says
        raw = None
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None, source
    return raw, source


def _build(cls: type, values: dict[tuple[str, ...], object], problems: list[str]):
    """`cls` built from `values` (keyed by path under it), sub-trees first; every wrong value
    goes to `problems`. None when something was wrong."""
    kwargs: dict[str, object] = {}
    complete = True
    for f in fields(cls):
        node = _node(f)
        if node is not None:
            mine = {p[1:]: v for p, v in values.items() if p[0] == f.name}
            built = _build(node, mine, problems)
            if built is None:
                complete = False
            else:
                kwargs[f.name] = built
        elif (f.name,) in values:
            kwargs[f.name] = values[(f.name,)]
    try:  # built even when a sub-tree failed (its defaults stand in) to name every problem
        built = cls(**kwargs)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None
    return built if complete else None


def load(
    root: type,
    overrides: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
):
    """The tree under `root` from defaults, AISTACK_STT_* variables and flags (`overrides`,
    by key). A `ConfigError` lists every wrong value in `problems` (its message is the first)."""
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    values: dict[tuple[str, ...], object] = {}
    problems: list[str] = []
    for leaf in leaves(root):
        raw, source = _raw(leaf, overrides, environ)
        if raw is None:
            continue
        if not isinstance(raw, str):
            values[leaf.path] = raw
            continue
        try:
            values[leaf.path] = leaf.convert(raw.strip(), source)
        except ConfigError as exc:
            problems.append(str(exc))
    settings = _build(root, values, problems)
    if problems or settings is None:
        raise ConfigError(problems[0], problems)
    return settings
