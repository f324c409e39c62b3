"""What the app keeps of speech synthesis: the voices, the synthesiser, their settings."""

from __future__ import annotations

import asyncio
import importlib.util
from dataclasses import dataclass, field, replace
from pathlib import Path

from fastapi import FastAPI

from ..config import ConfigError, TtsSettings
from ..errors import APIError
from .hub_voices import HubVoices, VoiceFetchError, is_voice_name
from .synthesis import Synthesizer
from .voices import Voice, VoiceCatalog, find_voices


@dataclass(frozen=True)
class TtsService:
    settings: TtsSettings
    catalog: VoiceCatalog
    synthesizer: Synthesizer
    hub: HubVoices
    _fetching: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def voice_for(self, model: str | None, voice: str | None) -> Voice:
        """The voice a request means (`VoiceCatalog.pick`). A Piper voice name the server does
        not have is fetched from the hub and loaded only where the operator allows it
        (`tts.client_voices` = `hub`); otherwise, and for any other name, the 404 stands."""
        try:
            return self.catalog.pick(model, voice)
        except APIError as exc:
            name = ((voice if exc.param == "voice" else model) or "").strip()
            if not is_voice_name(name):
                raise
            if self.settings.client_voices != "hub":
                raise replace(exc, message=f"{exc.message}; this server fetches no voice for "
                              "a request (AISTACK_STT_TTS_CLIENT_VOICES=local)") from None
        async with self._fetching:  # one fetch at a time; a second asker finds it loaded
            if name not in self.catalog.voices:
                try:
                    path = await asyncio.to_thread(self.hub.get, name)  # network and disk
                except VoiceFetchError as exc:
                    raise APIError(
                        404 if exc.missing else 503,
                        str(exc),
                        type="not_found_error" if exc.missing else "server_error",
                        param="voice",
                        code="voice_not_found" if exc.missing else "voice_fetch_failed",
                    ) from None
                [fetched] = find_voices(str(path))
                await self.synthesizer.load_voice(fetched)
                self.catalog.add(fetched)  # on the event loop, like every read of the catalog
        return self.catalog.voices[name]

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


def _is_path(spec: str) -> bool:
    path = Path(spec).expanduser()
    return path.exists() or path.with_name(path.name + ".onnx").is_file()


def build(settings: TtsSettings, model_dir: Path) -> TtsService | None:
    """The service for `settings.voice`, or None without one. A wrong voice is a ConfigError
    (at start, in one line), and so are a missing piper-tts and a voice the hub did not give.
    A voice name that is also a path on the server is the path (as before names existed)."""
    spec = settings.voice.strip()
    if not spec:
        return None
    hub = HubVoices(Path(settings.voice_dir or model_dir / "voices").expanduser(),
                    settings.hub_revision.strip())  # fmt: skip
    if importlib.util.find_spec("piper") is None:
        raise ConfigError(
            "tts voice is set but piper-tts is not installed; install it with "
            "pip install 'aistack-stt[tts]' (piper-tts is GPL-3.0 and installed separately)"
        )
    if is_voice_name(spec) and not _is_path(spec):
        try:
            spec = str(hub.get(spec))  # at start: the operator named it
        except VoiceFetchError as exc:
            raise ConfigError(str(exc)) from None
    catalog = VoiceCatalog(find_voices(spec))
    return TtsService(settings, catalog, Synthesizer(catalog, settings), hub)


def service_of(app: FastAPI, required: bool = True) -> TtsService | None:
    tts = getattr(app.state, "tts", None)
    if tts is None and required:
        raise APIError(
            404,
            "this server speaks with no voice: start it with --tts-voice (a Piper .onnx voice, "
            "a directory of them or a voice's hub name; the stt_server role's "
            "stt_server_tts_voice)",
            type="not_found_error",
            code="no_voice",
        )
    return tts
