"""Which voices the server has, and what a request's `model` and `voice` fields mean.

A voice is a Piper model: `NAME.onnx` with `NAME.onnx.json` beside it; its name is NAME
(`en_US-joe-medium`). `--tts-voice` names one such file or a directory holding several.
Only these voices are spoken with: nothing is downloaded when a request names another, unless
the operator allows Piper voice names from the hub (`tts.client_voices`, tts/hub_voices.py;
the stt_server role puts voices in place at deploy time, like Whisper models).

Stock OpenAI clients send OpenAI's names (`tts-1`, `alloy`); those, and `default`, mean the
default voice, so the clients work unchanged. Any other name is a 404 that lists what the
server has.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..config import ConfigError
from ..errors import APIError

# OpenAI's voice names (tts-1 and gpt-4o-mini-tts) and model names: all mean the default voice.
OPENAI_VOICES = (
    "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse"
)  # fmt: skip
OPENAI_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
DEFAULT = "default"
PROGRAM = "piper"  # also accepted as a model name: "the Piper engine, default voice"


@dataclass(frozen=True)
class Voice:
    name: str
    model: Path  # the .onnx file
    config: Path  # its .onnx.json
    sample_rate: int
    language: str  # as the voice's config writes it: en_US
    quality: str | None = None

    @property
    def description(self) -> str:
        quality = f", {self.quality} quality" if self.quality else ""
        return f"Piper voice {self.name} ({self.language}{quality})"


def _read_voice(model: Path) -> Voice:
    config = model.with_name(model.name + ".json")
    if not config.is_file():
        raise ConfigError(
            f"tts voice {model}: its config {config.name} is missing; a Piper voice is the "
            ".onnx file and the .onnx.json file that comes with it, side by side"
        )
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
        rate = int(data["audio"]["sample_rate"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"tts voice {model}: {config.name} is not a Piper voice config ({exc})"
        ) from None
    language = data.get("language", {}).get("code") or data.get("espeak", {}).get("voice", "")
    return Voice(
        name=model.name.removesuffix(".onnx"),
        model=model,
        config=config,
        sample_rate=rate,
        language=str(language),
        quality=data["audio"].get("quality"),
    )


def find_voices(spec: str) -> list[Voice]:
    """The voices `--tts-voice` names: one `.onnx` file, or every one in a directory."""
    path = Path(spec).expanduser()
    if path.is_dir():
        models = sorted(p for p in path.iterdir() if p.suffix == ".onnx" and p.is_file())
        if not models:
            raise ConfigError(
                f"tts voice {path}: the directory holds no Piper voice (NAME.onnx with "
                "NAME.onnx.json)"
            )
        return [_read_voice(m) for m in models]
    if path.is_file() and path.suffix == ".onnx":
        return [_read_voice(path)]
    if path.with_name(path.name + ".onnx").is_file():  # a voice given without its suffix
        return [_read_voice(path.with_name(path.name + ".onnx"))]
    raise ConfigError(
        f"tts voice {spec!r} is neither a Piper .onnx file nor a directory holding one; "
        "give the path to NAME.onnx (with NAME.onnx.json beside it) or to its directory"
    )


class VoiceCatalog:
    """The voices of this server by name; the first is the default."""

    def __init__(self, voices: list[Voice]) -> None:
        self.voices = {v.name: v for v in voices}
        self.default = voices[0]

    def add(self, voice: Voice) -> None:
        """A voice fetched for a request (tts/service.py); called on the event loop only, where
        every request reads the catalog."""
        self.voices[voice.name] = voice

    def names(self) -> list[str]:
        return list(self.voices)

    def pick(self, model: str | None, voice: str | None) -> Voice:
        """The voice a request means by its `model` and `voice` fields (404 naming the voices)."""
        chosen = self._voice_by_model(model)
        name = (voice or "").strip() or DEFAULT
        if name in self.voices:
            return self.voices[name]
        if name == DEFAULT or name.lower() in OPENAI_VOICES:
            return chosen or self.default
        raise APIError(
            404,
            f"voice {name!r} is not on this server; use one of {', '.join(self.names())} "
            f"(or {DEFAULT}, or an OpenAI voice name such as alloy, for {self.default.name})",
            type="not_found_error",
            param="voice",
            code="voice_not_found",
        )

    def _voice_by_model(self, model: str | None) -> Voice | None:
        name = (model or "").strip()
        if not name or name in OPENAI_MODELS or name in (PROGRAM, DEFAULT):
            return None
        if name in self.voices:  # Speaches' way: the voice's model id as the model
            return self.voices[name]
        raise APIError(
            404,
            f"model {name!r} is not a speech model of this server; use one of "
            f"{', '.join((*OPENAI_MODELS, PROGRAM, *self.names()))}",
            type="not_found_error",
            param="model",
            code="model_not_found",
        )
