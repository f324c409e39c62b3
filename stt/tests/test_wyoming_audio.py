"""Raw PCM in the formats a Wyoming client may announce becomes 16 kHz mono, chunk by chunk."""

from __future__ import annotations

import numpy as np
import pytest
from aistack_stt.wyoming.audio import AudioBuffer, AudioFormatError, AudioTooLong, PcmFormat


def _tone(rate: int, seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return 0.5 * np.sin(2 * np.pi * hz * t)


def _encode(signal: np.ndarray, width: int, channels: int) -> bytes:
    frames = np.repeat(signal[:, None], channels, axis=1).reshape(-1)
    if width == 1:
        return (frames * 127 + 128).astype(np.uint8).tobytes()
    if width == 2:
        return (frames * 32767).astype("<i2").tobytes()
    return (frames * 2147483647).astype("<i4").tobytes()


def _peak_hz(audio: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(audio))
    return float(np.argmax(spectrum) * 16000 / len(audio))


@pytest.mark.parametrize(
    ("rate", "width", "channels"),
    [(16000, 2, 1), (44100, 1, 2), (48000, 4, 2), (22050, 2, 6), (8000, 2, 1)],
)
def test_any_announced_format_becomes_16k_mono_with_the_same_sound(
    rate: int, width: int, channels: int
) -> None:
    fmt = PcmFormat.from_data({"rate": rate, "width": width, "channels": channels}, "audio-start")
    pcm = _encode(_tone(rate, 1.0), width, channels)
    buffer = AudioBuffer(max_seconds=10)
    step = rate * width * channels // 50 + 1  # 20 ms and one odd byte: frames split across chunks
    for offset in range(0, len(pcm), step):
        buffer.add(pcm[offset : offset + step], fmt)
    audio = buffer.audio()
    assert audio.dtype == np.float32
    assert abs(len(audio) - 16000) <= 160  # one second, give or take the resampler's edges
    assert abs(_peak_hz(audio) - 440) < 5
    assert 0.4 < float(np.max(np.abs(audio))) < 0.6


def test_the_limit_is_on_seconds_kept_not_on_the_clients_format() -> None:
    fmt = PcmFormat(rate=48000, width=4, channels=8)  # 1.5 MB per second on the wire
    buffer = AudioBuffer(max_seconds=2)
    one_second = _encode(_tone(48000, 1.0), 4, 8)
    buffer.add(one_second, fmt)
    with pytest.raises(AudioTooLong, match="more than 2 s"):
        for _ in range(3):
            buffer.add(one_second, fmt)
    assert buffer.seconds <= 2


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"rate": 16000, "width": 3, "channels": 1}, "width 3 bytes"),
        ({"rate": 500, "width": 2, "channels": 1}, "rate 500 Hz"),
        ({"rate": 16000, "width": 2, "channels": 0}, "channels 0"),
        ({"rate": "16000", "width": 2, "channels": 1}, "rate '16000' is not a whole number"),
        ({"width": 2, "channels": 1}, "rate None"),
    ],
)
def test_an_unreadable_format_is_named(data: dict, message: str) -> None:
    with pytest.raises(AudioFormatError, match=message):
        PcmFormat.from_data(data, "audio-start")
