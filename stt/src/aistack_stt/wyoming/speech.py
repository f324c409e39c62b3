"""Speech over Wyoming: the `tts` program of `describe`, and the answer to `synthesize`.

    synthesize {text, voice: {name, speaker}}  -> audio-start {rate, width, channels},
                                                  audio-chunk... (as sentences are ready),
                                                  audio-stop
    (a refused synthesis)                      -> error {text, code}; the connection stays

The voices are the server's own (no download, whatever name is asked for); OpenAI's voice
names and `default` mean the default voice, as over HTTP. Streaming text input
(`synthesize-start`/`-chunk`/`-stop`) is not offered in `describe`, so clients send the
whole text in one `synthesize`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from .. import __version__
from ..errors import APIError
from ..tts import TtsService
from .events import Event

PIPER = {"name": "Piper (piper-tts, GPL-3.0)", "url": "https://github.com/OHF-Voice/piper1-gpl"}
CHUNK_BYTES = 2 * 22050  # at most about a second of 16-bit audio per audio-chunk
# Events of streaming synthesis; a client sends them only to servers that offer it, and the
# plain `synthesize` follows them, so they are passed over without counting as unknown.
STREAMING_EVENTS = ("synthesize-start", "synthesize-chunk", "synthesize-stop")


def tts_programs(tts: TtsService | None) -> list[dict]:
    if tts is None:
        return []
    voices = [
        {
            "name": v.name,
            "description": v.description + (" (default)" if v is tts.catalog.default else ""),
            "attribution": PIPER,
            "installed": True,
            "version": None,
            "languages": [v.language],
            "speakers": None,
        }
        for v in tts.catalog.voices.values()
    ]
    return [
        {
            "name": "aistack-stt-tts",
            "description": "aistack-stt: Piper text-to-speech, shared with the OpenAI API",
            "attribution": {"name": "aistack", "url": "https://example.invalid/homelab/aistack"},
            "installed": True,
            "version": __version__,
            "voices": voices,
            "supports_synthesize_streaming": False,
        }
    ]


async def synthesize(
    tts: TtsService | None, data: dict, send: Callable[[Event], Awaitable[None]]
) -> None:
    """Speak `data["text"]` to the client; a request the server refuses raises APIError."""
    if tts is None:
        raise APIError(404, "this server has no voice (start it with --tts-voice)", code="no_voice")
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise APIError(400, "synthesize: text is missing or empty", code="invalid_value")
    tts.check_length(text, "synthesize: text")
    asked = data.get("voice") if isinstance(data.get("voice"), dict) else {}
    name = asked.get("name") if isinstance(asked.get("name"), str) else None
    voice = await tts.voice_for(None, name)
    tts.synthesizer.admit()
    try:
        audio = {"rate": voice.sample_rate, "width": 2, "channels": 1}
        await send(Event("audio-start", audio))
        async for block in tts.synthesizer.speak(voice, text):
            for start in range(0, len(block), CHUNK_BYTES):
                await send(Event("audio-chunk", audio, block[start : start + CHUNK_BYTES]))
        await send(Event("audio-stop"))
    finally:
        tts.synthesizer.release()
