"""Text-to-speech with Piper beside transcription: one base URL, one key, one Wyoming port.

`build(settings.tts, settings.model_dir)` gives the app's `TtsService` (voices, synthesiser,
the hub voices of tts/hub_voices.py) or None when no voice is configured; `router` serves
OpenAI's `/v1/audio/speech` and the voice lists; `wyoming` answers `synthesize` and describes
the voices to Home Assistant.
"""

from .router import router
from .service import TtsService, build, service_of
from .voices import Voice, VoiceCatalog

__all__ = ["TtsService", "Voice", "VoiceCatalog", "build", "router", "service_of"]
