"""What a live session reports, as typed values; each protocol adapter renders them its way."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar


@dataclass(frozen=True)
class SpeechStarted:
    kind: ClassVar[str] = "speech.started"
    utterance: int
    start: float  # seconds since the session began (padding included)


@dataclass(frozen=True)
class SpeechStopped:
    kind: ClassVar[str] = "speech.stopped"
    utterance: int
    end: float


@dataclass(frozen=True)
class Partial:
    """A hypothesis of the utterance so far: `committed` only grows, `unstable` may change."""

    kind: ClassVar[str] = "partial"
    utterance: int
    committed: str
    unstable: str
    text: str
    end: float = 0.0  # seconds since the session began: the audio this hypothesis covers


@dataclass(frozen=True)
class FinalSegment:
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Final:
    """The whole utterance transcribed once more: authoritative."""

    kind: ClassVar[str] = "final"
    utterance: int
    text: str
    start: float
    end: float
    language: str
    segments: list[FinalSegment]
    language_probability: float = 0.0


Event = SpeechStarted | SpeechStopped | Partial | Final


def as_message(event: Event) -> dict:
    """The event as the aistack protocol's JSON message."""
    return {"type": event.kind, **asdict(event)}
