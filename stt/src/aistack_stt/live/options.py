"""The options of a live session and how a client's choice of them is checked."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from .decoding import PROFILES

MODES = ("continue", "auto_end")
MAX_PROMPT_CHARS = 2000  # Whisper reads 223 tokens of it at most
TASKS = ("transcribe", "translate")


@dataclass(frozen=True)
class StreamOptions:
    model: str = "whisper-1"
    language: str | None = None
    mode: str = "continue"
    vad_threshold: float = 0.5
    vad_silence_ms: int = 500
    partial_interval_ms: int = 1000
    prompt: str | None = None  # Whisper's prompt for every transcription of the session
    hotwords: str | None = None  # names to spell right, comma-separated (vocabulary.py)
    task: str = "transcribe"
    profile: str | None = None  # a decode profile's name (decoding.py); None: the server's
    languages: tuple[str, ...] | None = None  # allow-list for detection; None: the server's
    capture: bool = True  # False: never kept, even where the server captures (capture.py)


class OptionError(ValueError):
    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


def parse_options(message: Mapping, defaults: StreamOptions) -> StreamOptions:
    """Check a start message; every mistake names the field and what it accepts."""
    known = {"type", *StreamOptions.__dataclass_fields__}
    unknown = sorted(set(message) - known)
    if unknown:
        raise OptionError(
            unknown[0],
            f"unknown option {unknown[0]!r}; the start message accepts "
            f"{', '.join(sorted(known - {'type'}))}",
        )
    values = asdict(defaults)
    for key in known - {"type"}:
        if key in message and message[key] is not None:
            values[key] = message[key]
    model, language, mode = values["model"], values["language"], values["mode"]
    if not isinstance(model, str) or not model.strip():
        raise OptionError("model", "model must be a non-empty string, e.g. whisper-1")
    if language is not None and (not isinstance(language, str) or not language.isalpha()):
        raise OptionError("language", f"language {language!r} must be a code such as en or de")
    if mode not in MODES:
        raise OptionError("mode", f"mode {mode!r} is not one of {', '.join(MODES)}")
    if values["task"] not in TASKS:
        raise OptionError("task", f"task {values['task']!r} is not one of {', '.join(TASKS)}")
    profile = values["profile"]
    if profile is not None and profile not in PROFILES:
        raise OptionError("profile", f"profile {profile!r} is not one of {', '.join(PROFILES)}")
    languages = values["languages"]
    if isinstance(languages, str):
        languages = [c.strip() for c in languages.split(",") if c.strip()]
    if languages is not None and (
        not isinstance(languages, list | tuple)
        or not all(isinstance(c, str) and c.isalpha() and len(c) <= 3 for c in languages)
    ):
        raise OptionError("languages", 'languages must be a list of codes, e.g. ["en", "de"]')
    if not isinstance(values["capture"], bool):
        raise OptionError("capture", "capture must be true or false")
    threshold = values["vad_threshold"]
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int | float)
        or not (0 < threshold < 1)
    ):
        raise OptionError(
            "vad_threshold", f"vad_threshold {threshold!r} must be a number between 0 and 1"
        )
    for key, low, high in (("vad_silence_ms", 100, 5000), ("partial_interval_ms", 200, 10000)):
        v = values[key]
        if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
            raise OptionError(key, f"{key} {v!r} must be a whole number from {low} to {high}")
    for key in ("prompt", "hotwords"):
        v = values[key]
        if v is not None and (not isinstance(v, str) or len(v) > MAX_PROMPT_CHARS):
            raise OptionError(
                key, f"{key} must be a string of at most {MAX_PROMPT_CHARS} characters"
            )
    return StreamOptions(
        prompt=values["prompt"] or None,
        hotwords=values["hotwords"] or None,
        model=model.strip(),
        language=language.lower() if language else None,
        mode=mode,
        vad_threshold=float(threshold),
        vad_silence_ms=values["vad_silence_ms"],
        partial_interval_ms=values["partial_interval_ms"],
        task=values["task"],
        profile=profile,
        languages=tuple(c.lower() for c in languages) if languages else None,
        capture=values["capture"],
    )
