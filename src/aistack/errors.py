"""Errors a user can cause, carried as values so that every problem is reported at once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Issue:
    """One problem in an input file: where it is, which key, what is wrong and how to fix it."""

    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        location = f"{self.file}:{self.line}" if self.line else self.file
        return (
            f"{location}: {self.path}: {self.message}"
            if self.path
            else f"{location}: {self.message}"
        )


class AistackError(Exception):
    """Raised for input the user can fix; the CLI prints it without a traceback and exits 2."""

    def __init__(self, issues: Iterable[Issue]) -> None:
        self.issues: tuple[Issue, ...] = tuple(sorted(set(issues)))
        super().__init__("\n".join(str(issue) for issue in self.issues))

    def paths(self) -> set[str]:
        return {issue.path for issue in self.issues}
