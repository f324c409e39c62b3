"""Turn uploaded bytes into the 16 kHz mono float32 waveform Whisper expects.

Containers and codecs go through PyAV; libswresample mixes down and resamples. (Not
faster-whisper's `decode_audio`: it runs a full `gc.collect()` per call, which cost 250 ms
per request in the server process, more than the whole HTTP path.)

Raw PCM has no header to probe, so a client that sends `audio/pcm` (the Speaches
convention) is taken at its word: signed 16-bit little-endian, 16 kHz, mono.
"""

from __future__ import annotations

import io

import av
import numpy as np

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
            audio = _decode_container(data)
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


def _decode_container(data: bytes) -> np.ndarray:
    chunks: list[np.ndarray] = []
    with av.open(io.BytesIO(data), mode="r", metadata_errors="ignore") as container:
        if not container.streams.audio:
            raise ValueError("no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError:
                continue  # one damaged packet; keep the rest of the recording
            for frame in frames:
                frame.pts = None  # let the resampler count samples, not trust timestamps
                chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(frame))
        chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks).astype(np.float32, copy=False)
