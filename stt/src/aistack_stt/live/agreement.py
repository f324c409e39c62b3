"""Committed prefix and unstable tail from successive hypotheses (local agreement)."""

from __future__ import annotations

import re

_WORD = re.compile(r"[\w']+")


def _norm(word: str) -> str:
    return "".join(_WORD.findall(word.lower()))


class PrefixAgreement:
    """A word is committed once two hypotheses in a row agree on it and on every word before
    it. Committed words are never taken back: a later hypothesis that contradicts them only
    changes the tail.
    """

    def __init__(self) -> None:
        self.committed: list[str] = []
        self._previous: list[str] = []

    def update(self, text: str) -> tuple[str, str]:
        words = text.split()
        n = len(self.committed)
        matches_committed = [_norm(w) for w in words[:n]] == [_norm(w) for w in self.committed]
        if matches_committed:
            agree = n
            limit = min(len(words), len(self._previous))
            while agree < limit and _norm(words[agree]) == _norm(self._previous[agree]):
                agree += 1
            self.committed.extend(words[n:agree])
        self._previous = words
        tail = words[len(self.committed) :] if matches_committed else words[n:]
        return " ".join(self.committed), " ".join(tail)
