"""Turn uploaded bytes into the 16 kHz mono float32 waveform Whisper expects.

Containers and codecs go through PyAV (via faster-whisper's decoder, which resamples with
libswresample). Raw PCM has no header to probe, so a client that sends `audio/pcm` (the
Speaches convention) is taken at its word: signed 16-bit little-endian, 16 kHz, mono.
"""

from __future__ import annotations

import io

import numpy as np
from faster_whisper.audio import decode_audio

from .errors import APIError

SAMPLE_RATE = 16000
PCM_TYPES = ("audio/pcm", "audio/l16", "audio/x-pcm", "audio/s16le")


def decode(data: bytes, content_type: str | None, filename: str | None = None) -> np.ndarray:
    """Decode an upload; any failure is the client's audio, so it becomes a 400."""
    name = filename or "file"
    if not data:
        raise APIError(400, f"the uploaded {name} is empty", param="file", code="empty_file")
    media = (content_type or "").split(";")[0].strip().lower()
    if media in PCM_TYPES:
        if len(data) % 2:
            raise APIError(
                400,
                f"{name} is sent as {media} but has an odd number of bytes; raw PCM must be "
                "16-bit little-endian samples",
                param="file",
                code="invalid_audio",
            )
        audio = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    else:
        try:
            audio = decode_audio(io.BytesIO(data), sampling_rate=SAMPLE_RATE)
        except Exception as exc:  # PyAV raises many types; all mean "not audio we can read"
            raise APIError(
                400,
                f"could not decode {name} as audio ({type(exc).__name__}: {exc}); send wav, "
                "mp3, ogg/opus, webm, m4a or flac, or raw 16 kHz s16le PCM as audio/pcm",
                param="file",
                code="invalid_audio",
            ) from None
    if audio.size == 0:
        raise APIError(400, f"{name} contains no audio samples", param="file", code="empty_audio")
    return audio


def duration(audio: np.ndarray) -> float:
    return float(audio.shape[0]) / SAMPLE_RATE
