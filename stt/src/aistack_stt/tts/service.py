"""What the app keeps of speech synthesis: the voices, the synthesiser, their settings."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from fastapi import FastAPI

from ..config import ConfigError, TtsSettings
from ..errors import APIError
from .synthesis import Synthesizer
from .voices import VoiceCatalog, find_voices


@dataclass(frozen=True)
class TtsService:
    settings: TtsSettings
    catalog: VoiceCatalog
    synthesizer: Synthesizer

    def check_length(self, text: str, what: str, advice: str = "", param: str | None = None):
        """400 `input_too_long` when `text` (named `what` in the message) passes the cap;
        the same rule for HTTP and Wyoming."""
        limit = self.settings.max_input_chars
        if len(text) > limit:
            raise APIError(
                400,
                f"{what} is {len(text)} characters long; the limit is {limit} "
                f"(AISTACK_STT_TTS_MAX_INPUT_CHARS){advice}",
                param=param,
                code="input_too_long",
            )


def build(settings: TtsSettings) -> TtsService | None:
    """The service for `settings.voice`, or None without one. A wrong voice is a ConfigError
    (at start, in one line), and so is a missing piper-tts."""
    if not settings.voice.strip():
        return None
    catalog = VoiceCatalog(find_voices(settings.voice.strip()))
    if importlib.util.find_spec("piper") is None:
        raise ConfigError(
            "tts voice is set but piper-tts is not installed; install it with "
            "pip install 'aistack-stt[tts]' (piper-tts is GPL-3.0 and installed separately)"
        )
    return TtsService(settings, catalog, Synthesizer(catalog, settings))


def service_of(app: FastAPI, required: bool = True) -> TtsService | None:
    tts = getattr(app.state, "tts", None)
    if tts is None and required:
        raise APIError(
            404,
            "this server speaks with no voice: start it with --tts-voice (a Piper .onnx voice "
            "or a directory of them; the stt_server role's stt_server_tts_voice)",
            type="not_found_error",
            code="no_voice",
        )
    return tts
