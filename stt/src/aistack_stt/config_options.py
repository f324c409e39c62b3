"""Declaring a setting with its bounds, and the one loop that checks a node of the tree.

A leaf of the settings tree (config.py) is `option(default, help, ge=1)`: the default, the
one-line meaning and what is allowed, all in one place. `Checked` is the base of every node:
building one runs `problems()` over its leaves and raises one `ConfigError` that names every
wrong value, not the first. Nothing is checked by hand elsewhere.

Standard library only; nothing here knows which settings exist.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar


class ConfigError(ValueError):
    """A setting a user gave is wrong; the message names it and says what is allowed.

    `problems` holds one line per wrong setting when several were found at once.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


# `means` of a setting whose 0 lets the server choose.
AUTOMATIC = {0: "automatic"}
# A check beyond a range or a list: (name, value) -> the problem in one line, or None.
Check = Callable[[str, Any], "str | None"]


def _number(value: float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


@dataclass(frozen=True)
class Bounds:
    """What one setting allows: a range (`ge`/`gt`, `le`/`lt`), a list (`choices`) or a
    `check`. `unit` follows the range in messages ("1-30 seconds"); `means` names special
    values of it ({0: "automatic"} reads "use 0 (automatic) or more")."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[str, ...] | None = None
    check: Check | None = None
    unit: str = ""
    means: Mapping[float, str] = field(default_factory=dict)

    def _edge(self, value: float) -> str:
        text = _number(value)
        return f"{text} ({self.means[value]})" if value in self.means else text

    def allowed(self) -> str:
        """The allowed range as the end of "use ...": "1 or more", "0-19", "1-30 seconds"."""
        unit = f" {self.unit}" if self.unit else ""
        low = self.ge if self.ge is not None else self.gt
        high = self.le if self.le is not None else self.lt
        if low is not None and high is not None:
            if self.gt is not None or self.lt is not None:
                return f"more than {_number(low)} and up to {_number(high)}{unit}"
            notes = "; ".join(f"{_number(k)}: {v}" for k, v in self.means.items())
            return f"{_number(low)}-{_number(high)}{unit}" + (f" ({notes})" if notes else "")
        if self.ge is not None:
            return f"{self._edge(self.ge)} or more{unit}"
        if self.gt is not None:
            return f"more than {_number(self.gt)}{unit}"
        return f"up to {self._edge(high)}{unit}" if high is not None else "another value"

    def _outside(self, value: float) -> bool:
        return (
            (self.ge is not None and value < self.ge)
            or (self.gt is not None and value <= self.gt)
            or (self.le is not None and value > self.le)
            or (self.lt is not None and value >= self.lt)
        )

    def problem(self, name: str, value: object) -> str | None:
        """What is wrong with `value` for the setting `name`, in one line; None when allowed."""
        if value is None:
            return None  # an optional setting left unset
        if self.choices is not None and value not in self.choices:
            return f"{name} {value!r} is not one of {', '.join(self.choices)}"
        if isinstance(value, int | float) and not isinstance(value, bool) and self._outside(value):
            both = {self.ge, self.gt} != {None} and {self.le, self.lt} != {None}
            return (
                f"{name} {value} is {'out of range' if both else 'invalid'}; use {self.allowed()}"
            )
        return self.check(name, value) if self.check is not None else None


_BOUND_KEYS = ("ge", "gt", "le", "lt", "choices", "check", "unit", "means")


def option(default, help: str, shown: str | None = None, **kw):  # noqa: A002 (argparse's name)
    """A leaf of the tree: its default, its one-line meaning, how the README shows the default
    (`shown`), what it allows (`ge`, `gt`, `le`, `lt`, `choices`, `check`, `unit`, `means`:
    see `Bounds`) and `fold_case` (a value is lower-cased when read). Other keywords go to
    `dataclasses.field` (`repr=False`)."""
    bounds = Bounds(**{k: kw.pop(k) for k in _BOUND_KEYS if k in kw})
    meta = {"help": help, "shown": shown, "bounds": bounds, "fold_case": kw.pop("fold_case", False)}
    if callable(default) and not isinstance(default, type):
        return field(default_factory=default, metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


def problems(node: object) -> list[str]:
    """The one loop: every leaf of `node` checked against its bounds, each wrong one named.

    Names read as in the tree: "max_batch" at the top or in the scheduler, "stream
    max_sessions" in a sub-tree with a label."""
    label = getattr(node, "label", "")
    found = []
    for f in fields(node):  # type: ignore[arg-type]
        bounds = f.metadata.get("bounds")
        if bounds is not None:
            name = f"{label} {f.name}" if label else f.name
            problem = bounds.problem(name, getattr(node, f.name))
            if problem is not None:
                found.append(problem)
    return found


class Checked:
    """Base of every node of the tree (a frozen dataclass): building one with wrong values
    raises one `ConfigError` that lists them all. `label` prefixes the names in messages and,
    upper-cased, the node's variables (`stream` -> AISTACK_STT_STREAM_*); "" for none."""

    label: ClassVar[str] = ""

    def __post_init__(self) -> None:
        found = problems(self)
        if found:
            raise ConfigError(found[0], found)


def subtree(cls: type) -> Any:
    """A node of the tree inside another: its defaults, its variables under its label."""
    prefix = f"{cls.label.upper()}_" if getattr(cls, "label", "") else ""
    return field(default_factory=cls, metadata={"env": prefix})
