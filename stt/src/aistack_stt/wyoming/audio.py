"""Raw PCM chunks in any rate, width and channel count, into 16 kHz mono float32.

Each chunk is converted as it arrives (PyAV's resampler keeps its state between chunks), so a
connection holds at most `max_seconds` of 16 kHz audio however the client sends it: the limit
is on what is kept, not on what the client's format would make it.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

SAMPLE_RATE = 16000
WIDTHS = (1, 2, 4)  # bytes per sample: unsigned 8-bit (as in WAV), signed 16 and 32-bit LE
MAX_RATE = 192000
MAX_CHANNELS = 8


class AudioFormatError(ValueError):
    """The client described audio we cannot read; the message says what is allowed."""


class AudioTooLong(ValueError):
    """More audio than one request may hold."""


@dataclass(frozen=True)
class PcmFormat:
    rate: int
    width: int
    channels: int

    @classmethod
    def from_data(cls, data: dict, event: str) -> PcmFormat:
        values = []
        for name in ("rate", "width", "channels"):
            value = data.get(name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise AudioFormatError(f"{event}: {name} {value!r} is not a whole number")
            values.append(value)
        fmt = cls(*values)
        if not 1000 <= fmt.rate <= MAX_RATE:
            raise AudioFormatError(f"{event}: rate {fmt.rate} Hz is outside 1000-{MAX_RATE}")
        if fmt.width not in WIDTHS:
            raise AudioFormatError(
                f"{event}: width {fmt.width} bytes is not one of {', '.join(map(str, WIDTHS))}"
            )
        if not 1 <= fmt.channels <= MAX_CHANNELS:
            raise AudioFormatError(f"{event}: channels {fmt.channels} is outside 1-{MAX_CHANNELS}")
        return fmt

    @property
    def frame_bytes(self) -> int:
        return self.width * self.channels


class AudioBuffer:
    """The audio of one request so far, at 16 kHz mono, bounded by `max_seconds`."""

    def __init__(self, max_seconds: float) -> None:
        self.max_samples = int(max_seconds * SAMPLE_RATE)
        self._chunks: list[np.ndarray] = []
        self._samples = 0
        self._format: PcmFormat | None = None
        self._resampler: av.AudioResampler | None = None
        self._pending = b""  # bytes of an incomplete sample frame, kept for the next chunk

    @property
    def seconds(self) -> float:
        return self._samples / SAMPLE_RATE

    def add(self, pcm: bytes, fmt: PcmFormat) -> np.ndarray:
        """Keep a chunk; returns its samples at 16 kHz (for the VAD of live_decode.py)."""
        if fmt != self._format:
            self._flush()
            self._format, self._pending = fmt, b""
            self._resampler = None
            if fmt.rate != SAMPLE_RATE:
                self._resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        pcm = self._pending + pcm
        usable = len(pcm) - len(pcm) % fmt.frame_bytes
        self._pending = pcm[usable:]
        if not usable:
            return np.zeros(0, dtype=np.float32)
        samples = self._resample(_to_float_mono(pcm[:usable], fmt), fmt)
        self._append(samples)
        return samples

    def so_far(self) -> np.ndarray:
        """What was received up to now, without ending the request (the resampler's tail
        waits for `audio`)."""
        if not self._chunks:
            return np.zeros(0, dtype=np.float32)
        if len(self._chunks) > 1:  # joined once, so repeated calls stay cheap
            self._chunks = [np.concatenate(self._chunks)]
        return self._chunks[0]

    def audio(self) -> np.ndarray:
        """Everything received, as one array (the resampler's tail included)."""
        self._flush()
        if not self._chunks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(self._chunks)

    def _resample(self, mono: np.ndarray, fmt: PcmFormat) -> np.ndarray:
        if self._resampler is None:
            return mono
        frame = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = fmt.rate
        return _joined(self._resampler.resample(frame))

    def _flush(self) -> None:
        if self._resampler is not None:
            self._append(_joined(self._resampler.resample(None)))
            self._resampler = None
            self._format = None

    def _append(self, samples: np.ndarray) -> None:
        if not samples.size:
            return
        if self._samples + samples.size > self.max_samples:
            raise AudioTooLong(
                f"more than {self.max_samples / SAMPLE_RATE:g} s of audio in one request "
                "(AISTACK_STT_WYOMING_MAX_AUDIO_S)"
            )
        self._chunks.append(samples)
        self._samples += samples.size


def _to_float_mono(pcm: bytes, fmt: PcmFormat) -> np.ndarray:
    if fmt.width == 1:
        samples = (np.frombuffer(pcm, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0
    elif fmt.width == 2:
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    else:
        samples = np.frombuffer(pcm, dtype="<i4").astype(np.float32) / 2147483648.0
    if fmt.channels > 1:
        samples = samples.reshape(-1, fmt.channels).mean(axis=1, dtype=np.float32)
    return samples


def _joined(frames: list[av.AudioFrame]) -> np.ndarray:
    if not frames:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32)
