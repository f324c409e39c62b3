"""Whether a recording holds speech at all, and which decoded windows to keep.

Whisper writes something for every 30 s it is shown: given digital silence, hiss, mains
hum or the click of a mic button it invents a word ("You", "Thank you."), which in a voice
chat lands in the conversation and is sent to the model. Two checks, both from
faster-whisper's toolbox, stop that:

1. Before decoding, Silero VAD (faster-whisper's `vad_filter`) looks for speech. A request
   with no speech anywhere is answered with empty text and never reaches the model, which
   also makes silence cheap. Audio with speech is decoded whole, as before: cutting the
   pauses out (what `vad_filter` does inside `WhisperModel.transcribe`) changes the words
   of clips that are mostly speech anyway, and measured here did not lower the WER.
2. After decoding, a window is dropped as silence when Whisper itself says it holds no
   speech: its no-speech probability is above `no_speech_threshold` and its average
   log-probability below `log_prob_threshold` (Whisper's own rule); the log-probability
   and compression-ratio thresholds also decide when a window is decoded again at a
   higher temperature.

The defaults were measured on a generated corpus of commands, sentences, noisy speech,
silence, noise and hum (bench/stt_silence.py; figures in docs/benchmarks.md). A request may
override each one with an extra form field of the same name, as other OpenAI-compatible
servers (faster-whisper-server, Speaches) accept them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace

import numpy as np

SAMPLE_RATE = 16000


_RANGES = (
    ("vad_threshold", 0.0, 1.0),
    ("vad_min_speech_ms", 0, 10_000),
    ("no_speech_threshold", 0.0, 1.0),
    ("log_prob_threshold", -100.0, 0.0),
    ("compression_ratio_threshold", 0.0, 100.0),
)


class SilenceOptionError(ValueError):
    """An override field has a bad value; `field` names it, the message says what is allowed."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class SilenceOptions:
    """How silence is told from speech; hashable, as it is part of a batch's decoding key."""

    vad_filter: bool = True  # look for speech with Silero VAD before decoding
    vad_threshold: float = 0.5  # Silero speech probability that counts as speech
    vad_min_speech_ms: int = 120  # less speech than this in the whole request: none
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4

    def __post_init__(self) -> None:
        for name, low, high in _RANGES:
            value = getattr(self, name)
            if not low <= value <= high:
                raise SilenceOptionError(name, f"{name} {value!r} is outside {low:g} to {high:g}")

    def window_is_silent(self, no_speech_prob: float, avg_logprob: float) -> bool:
        """Whisper's rule: it thinks nobody speaks, and what it wrote is unlikely."""
        return no_speech_prob > self.no_speech_threshold and avg_logprob < self.log_prob_threshold

    def needs_retry(self, compression_ratio: float, avg_logprob: float) -> bool:
        """A window decoded into a loop or into unlikely text: try the next temperature."""
        return (
            compression_ratio > self.compression_ratio_threshold
            or avg_logprob < self.log_prob_threshold
        )


DEFAULT = SilenceOptions()
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off")
FORM_FIELDS = tuple(f.name for f in fields(SilenceOptions))


def from_form(text: Callable[[str], str | None], base: SilenceOptions = DEFAULT) -> SilenceOptions:
    """The defaults with a request's override fields applied (`text(name)`: the field or None).

    Raises SilenceOptionError naming the field when a value is not of its kind or range.
    """
    changes: dict[str, object] = {}
    for f in fields(SilenceOptions):
        raw = text(f.name)
        if raw is None or raw == "":
            continue
        kind = type(getattr(base, f.name))
        if kind is bool:
            if raw.lower() not in _TRUE + _FALSE:
                raise SilenceOptionError(f.name, f"{f.name} {raw!r} is not true or false")
            changes[f.name] = raw.lower() in _TRUE
            continue
        try:
            changes[f.name] = kind(raw)
        except ValueError:
            what = "a whole number" if kind is int else "a number"
            raise SilenceOptionError(f.name, f"{f.name} {raw!r} is not {what}") from None
    return replace(base, **changes) if changes else base


def speech_ms(audio: np.ndarray, options: SilenceOptions = DEFAULT) -> float:
    """Milliseconds of speech Silero VAD finds in 16 kHz mono audio. CPU work: call off-loop."""
    if audio.size == 0:
        return 0.0
    # Imported here: engine.py (the light seam every protocol imports) holds SilenceOptions.
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    vad = VadOptions(threshold=options.vad_threshold, min_silence_duration_ms=100, speech_pad_ms=0)
    chunks = get_speech_timestamps(audio, vad)
    return sum(c["end"] - c["start"] for c in chunks) * 1000 / SAMPLE_RATE


def has_speech(audio: np.ndarray, options: SilenceOptions = DEFAULT) -> bool:
    """False when the request certainly holds no speech and must not be decoded at all."""
    if not options.vad_filter:
        return True
    return speech_ms(audio, options) >= options.vad_min_speech_ms
