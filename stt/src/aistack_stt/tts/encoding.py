"""The audio formats of OpenAI's speech API, written as the sentences arrive.

`wav` and `pcm` are written here (no extra program): a WAV header whose sizes say "unknown,
read to the end" (what streaming WAV writers do), then the samples. `pcm` is OpenAI's raw
format, 16-bit mono at 24 kHz, so the voice's samples are resampled to that rate.
`mp3`, `opus` (Ogg), `aac` (ADTS) and `flac` are encoded by ffmpeg as a pipe: samples in,
encoded packets out as soon as they are made; without ffmpeg on the server they are a 400
saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass

import numpy as np

from ..errors import bad_param

PCM_RATE = 24000  # OpenAI's `pcm`: 24 kHz, 16-bit signed little-endian, mono
_READ = 16384


@dataclass(frozen=True)
class Format:
    media_type: str
    ffmpeg: tuple[str, ...] = ()  # the output options; empty: written here


FORMATS = {
    "mp3": Format("audio/mpeg", ("-c:a", "libmp3lame", "-b:a", "64k", "-f", "mp3")),
    "opus": Format("audio/ogg", ("-c:a", "libopus", "-b:a", "32k", "-ar", "24000", "-f", "ogg")),
    "aac": Format("audio/aac", ("-c:a", "aac", "-b:a", "64k", "-f", "adts")),
    "flac": Format("audio/flac", ("-c:a", "flac", "-f", "flac")),
    "wav": Format("audio/wav"),
    "pcm": Format("audio/pcm"),
}


def check_format(name: str) -> Format:
    """The format a request names, or a 400 saying what is possible here."""
    fmt = FORMATS.get(name)
    if fmt is None:
        raise bad_param(
            "response_format",
            f"response_format {name!r} is not one of {', '.join(FORMATS)}",
        )
    if fmt.ffmpeg and shutil.which("ffmpeg") is None:
        raise bad_param(
            "response_format",
            f"response_format {name} needs ffmpeg on the server, which is not installed; ask "
            "for wav or pcm, or install ffmpeg where aistack-stt runs",
        )
    return fmt


def wav_header(rate: int) -> bytes:
    """A 16-bit mono WAV header for a stream of unknown length (sizes 0xFFFFFFFF)."""
    unknown = 0xFFFFFFFF
    return (
        b"RIFF" + struct.pack("<I", unknown) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data" + struct.pack("<I", unknown)
    )  # fmt: skip


def resample(pcm: bytes, rate: int, target: int) -> bytes:
    """16-bit mono PCM from `rate` to `target` by linear interpolation (speech, upsampling)."""
    if rate == target or not pcm:
        return pcm
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    count = max(1, round(samples.size * target / rate))
    positions = np.arange(count, dtype=np.float64) * (rate / target)
    out = np.interp(positions, np.arange(samples.size), samples)
    return np.clip(out, -32768, 32767).astype("<i2").tobytes()


async def encode(blocks: AsyncIterator[bytes], name: str, rate: int) -> AsyncIterator[bytes]:
    """The bytes of format `name` for PCM `blocks` at `rate`, each part as soon as it exists."""
    fmt = FORMATS[name]
    if name == "wav":
        yield wav_header(rate)
        async for block in blocks:
            yield block
    elif name == "pcm":
        async for block in blocks:
            yield resample(block, rate, PCM_RATE)
    else:
        async for part in _ffmpeg(blocks, fmt, rate):
            yield part


async def _ffmpeg(blocks: AsyncIterator[bytes], fmt: Format, rate: int) -> AsyncIterator[bytes]:
    process = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin",
        "-f", "s16le", "-ar", str(rate), "-ac", "1", "-i", "pipe:0",
        *fmt.ffmpeg, "-flush_packets", "1", "pipe:1",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    async def feed() -> None:
        try:
            async for block in blocks:
                stdin.write(block)
                await stdin.drain()
        finally:
            with contextlib.suppress(Exception):
                stdin.close()

    feeder = asyncio.ensure_future(feed())
    try:
        while part := await stdout.read(_READ):
            yield part
        await feeder  # a synthesis failure surfaces here, after what was encoded
    finally:
        if not feeder.done():
            feeder.cancel()
            with contextlib.suppress(BaseException):
                await feeder
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        with contextlib.suppress(Exception):
            await process.wait()
