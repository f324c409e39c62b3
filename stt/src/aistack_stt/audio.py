"""Turn uploaded bytes into the 16 kHz mono float32 waveform Whisper expects.

Containers and codecs go through PyAV; libswresample mixes down and resamples. (Not
faster-whisper's `decode_audio`: it runs a full `gc.collect()` per call, which cost 250 ms
per request in the server process, more than the whole HTTP path.)

Raw PCM has no header to probe, so a client that sends `audio/pcm` (the Speaches
convention) is taken at its word: signed 16-bit little-endian, 16 kHz, mono.
"""

from __future__ import annotations

import io
from collections import deque

import av
import numpy as np

from .errors import APIError

SAMPLE_RATE = 16000
PCM_TYPES = ("audio/pcm", "audio/l16", "audio/x-pcm", "audio/s16le")


class AudioTooLong(Exception):
    """The decoded audio passed the limit; raised as soon as it does, not after decoding."""


def too_long(name: str, max_seconds: float) -> APIError:
    return APIError(
        413,
        f"{name} decodes to more than {max_seconds:g} s of audio, the limit "
        "(AISTACK_STT_MAX_AUDIO_S); send a shorter recording or split it",
        param="file",
        code="audio_too_long",
    )


def decode(
    data: bytes,
    content_type: str | None,
    filename: str | None = None,
    max_seconds: float | None = None,
) -> np.ndarray:
    """Decode an upload; any failure is the client's audio, so it becomes a 400.

    With `max_seconds`, decoding stops as soon as the audio passes it (413): a few KiB of
    FLAC can unpack to hours of samples, so the limit is counted frame by frame, never
    after the whole waveform is in memory.
    """
    name = filename or "file"
    max_samples = None if max_seconds is None else int(max_seconds * SAMPLE_RATE)
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
        if max_samples is not None and len(data) // 2 > max_samples:
            raise too_long(name, max_seconds)
        audio = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    else:
        try:
            audio = _decode_container(data, max_samples)
        except AudioTooLong:
            raise too_long(name, max_seconds) from None
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


def _decode_container(data: bytes, max_samples: int | None = None) -> np.ndarray:
    chunks: deque[np.ndarray] = deque()
    total = 0

    def keep(frames: list[av.AudioFrame]) -> None:
        nonlocal total
        for f in frames:
            chunk = f.to_ndarray().reshape(-1)
            total += chunk.shape[0]
            if max_samples is not None and total > max_samples:
                raise AudioTooLong
            chunks.append(chunk)

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
                keep(resampler.resample(frame))
        keep(resampler.resample(None))
    # Joined chunk by chunk, each freed once copied: the peak is the waveform once, not twice.
    audio = np.empty(total, dtype=np.float32)
    at = 0
    while chunks:
        chunk = chunks.popleft()
        audio[at : at + chunk.shape[0]] = chunk
        at += chunk.shape[0]
    return audio
