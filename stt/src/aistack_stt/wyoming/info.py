"""What `describe` answers: one `asr` program, aistack-stt, with the models it serves.

Only models that are already here are offered (the default, what is loaded, what lies in the
model directory), and `transcribe` accepts only those names: Wyoming has no authentication,
so a client must not be able to make the server download from the hub or open a directory
of its choosing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from faster_whisper.tokenizer import _LANGUAGE_CODES as WHISPER_LANGUAGES

from .. import __version__
from ..errors import APIError
from ..model_names import DEFAULT_ALIAS
from ..models import ModelManager
from .events import Event

PROGRAM = "aistack-stt"
PROGRAM_URL = "https://example.invalid/homelab/aistack"  # galaxy.yml's repository
WHISPER = {
    "name": "OpenAI Whisper, run by faster-whisper/CTranslate2",
    "url": "https://github.com/openai/whisper",
}
# Vocabulary sizes: English-only Whisper models have 51864 tokens, multilingual ones more.
_ENGLISH_VOCABULARY = 51864


@dataclass(frozen=True)
class ServedModel:
    name: str
    multilingual: bool
    loaded: bool

    @property
    def languages(self) -> list[str]:
        return list(WHISPER_LANGUAGES) if self.multilingual else ["en"]


def served_models(models: ModelManager) -> list[ServedModel]:
    """The default model first, then every other model present on this machine."""
    loaded = {m.id: m.multilingual for m in models.loaded()}
    served = []
    for mid in models.available():
        if mid == DEFAULT_ALIAS:
            continue
        path = _local_path(models, mid)
        if mid != models.default_id and mid not in loaded and path is None:
            continue  # a hub alias that would have to be downloaded first
        multilingual = loaded[mid] if mid in loaded else _multilingual(mid, path)
        served.append(ServedModel(mid, multilingual, mid in loaded))
    return served


def pick_model(models: ModelManager, name: str | None) -> str:
    """The model a `transcribe` names: none, the program's name or whisper-1 mean the default."""
    if not name or name in (PROGRAM, DEFAULT_ALIAS):
        return models.default_id
    names = [m.name for m in served_models(models)]
    if name not in names:
        raise APIError(
            404,
            f"model {name!r} is not served over Wyoming; use one of {', '.join(names)} "
            "(describe lists them)",
            param="name",
            code="model_not_found",
        )
    return name


def info_event(models: ModelManager) -> Event:
    program_models = [
        {
            "name": m.name,
            "description": f"Whisper {m.name}"
            + (" (default)" if m.name == models.default_id else ""),
            "attribution": WHISPER,
            "installed": True,
            "version": None,
            "languages": m.languages,
        }
        for m in served_models(models)
    ]
    program = {
        "name": PROGRAM,
        "description": "aistack-stt: Whisper speech-to-text, shared with the OpenAI API",
        "attribution": {"name": "aistack", "url": PROGRAM_URL},
        "installed": True,
        "version": __version__,
        "models": program_models,
        "supports_transcript_streaming": True,
    }
    return Event("info", {"asr": [program], "tts": [], "handle": [], "intent": [], "wake": []})


def _local_path(models: ModelManager, mid: str) -> Path | None:
    try:
        return models.resolve(mid).path
    except APIError:
        return None


def _multilingual(mid: str, path: Path | None) -> bool:
    """Without loading the model: count its vocabulary, else go by the `.en` name."""
    if path is not None:
        for name in ("vocabulary.json", "vocabulary.txt"):
            vocabulary = path / name
            if vocabulary.is_file():
                try:
                    if name.endswith(".json"):
                        size = len(json.loads(vocabulary.read_text(encoding="utf-8")))
                    else:
                        text = vocabulary.read_text(encoding="utf-8")
                        size = text.count("\n") + (0 if text.endswith("\n") else 1)
                except (OSError, ValueError):
                    break
                return size > _ENGLISH_VOCABULARY
    return not mid.endswith(".en")
