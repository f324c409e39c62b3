"""Spoken test audio: a sentence synthesized with espeak-ng, as a 16 kHz mono WAV.

Real speech, made on the spot, so the voice tests check transcription of words nobody typed
into a fixture. espeak-ng speaks many languages (`voice="fr"`, `"de"`, ...); sox brings its
22 kHz output to the 16 kHz mono 16-bit format Whisper models are trained on.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path


class SpeechToolMissing(RuntimeError):
    """espeak-ng or sox is not installed on this machine."""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SpeechToolMissing(
            f"{name} is not installed; install it with `apt-get install espeak-ng sox`"
        )
    return path


def synthesize_wav(text: str, voice: str = "en", words_per_minute: int = 150) -> bytes:
    """The WAV bytes of `text` spoken by espeak-ng in `voice`, 16 kHz mono 16-bit PCM."""
    if not text.strip():
        raise ValueError("text to speak is empty")
    espeak, sox = _tool("espeak-ng"), _tool("sox")
    with tempfile.TemporaryDirectory(prefix="aistack-speech-") as tmp:
        raw, out = Path(tmp) / "raw.wav", Path(tmp) / "speech.wav"
        subprocess.run(
            [espeak, "-v", voice, "-s", str(words_per_minute), "-w", str(raw), text],
            check=True, capture_output=True,
        )
        subprocess.run(
            [sox, str(raw), "-r", "16000", "-c", "1", "-b", "16", "-e", "signed-integer", str(out)],
            check=True, capture_output=True,
        )
        return out.read_bytes()
