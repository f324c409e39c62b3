#!/usr/bin/env python3
"""A 3 s voice command over Wyoming against the same over HTTP, and against wyoming-faster-whisper.

Usage: .venv/bin/python bench/stt_wyoming.py [--runs N] [--wfw-python PY] [--write]

One `aistack-stt serve` process answers both protocols from one model (tiny.en int8, beam 5,
2 threads, language en). The command is synthesized with espeak-ng and resampled to 16 kHz
mono s16, the format Home Assistant sends: over Wyoming as 20 ms `audio-chunk` events sent
back to back, over HTTP as the same samples in a WAV upload. A request's time runs from
opening the connection to the transcript; each request opens its own connection, as Home
Assistant and Open WebUI do. With `--wfw-python` (a Python whose environment has
wyoming-faster-whisper from PyPI), that server is started on the same model directory with
the same device, compute type, threads, beam and language, and measured the same way.

Rounds interleave the targets in a shuffled order so background load on a shared machine
hits all alike; the report gives medians and the median of per-round ratios. The target is
Wyoming at most 1.05x HTTP. `--write` replaces the `## Wyoming` section of docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import wave
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import av
import httpx
import numpy as np
from benchdoc import (
    ensure_test_models,
    free_port,
    publish,
    servers,
    start_process,
    stt_parser,
)
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Wyoming"
TARGET = 1.05
COMMAND = "Turn on the kitchen lights and the hallway lamp."
RATE, WIDTH, CHANNELS = 16000, 2, 1


def make_clip(tmp: Path) -> tuple[bytes, Path, float]:
    """The command as 16 kHz mono s16 PCM, and the same samples as a WAV file."""
    raw = tmp / "command-espeak.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), COMMAND], check=True)
    with av.open(str(raw)) as inp:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        chunks = [
            f.to_ndarray().reshape(-1) for fr in inp.decode(audio=0) for f in resampler.resample(fr)
        ]
        chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    pcm = np.concatenate(chunks).astype("<i2").tobytes()
    wav_path = tmp / "command-16k.wav"
    with wave.open(str(wav_path), "wb") as wav:
        wav.setnchannels(CHANNELS)
        wav.setsampwidth(WIDTH)
        wav.setframerate(RATE)
        wav.writeframes(pcm)
    return pcm, wav_path, len(pcm) / (RATE * WIDTH * CHANNELS)


def start_aistack(model_dir: Path, threads: int, model: str = "tiny.en", **extra: str):
    """One `aistack-stt serve` (this checkout's code) with both protocols, once ready; its
    Wyoming port. `extra`: more AISTACK_STT_* settings."""
    wyoming_port = free_port()
    server = start_process({
        "AISTACK_STT_MODEL": model,
        "AISTACK_STT_MODEL_DIR": str(model_dir),
        "AISTACK_STT_DEVICE": "cpu",
        "AISTACK_STT_COMPUTE_TYPE": "int8",
        "AISTACK_STT_CPU_THREADS": str(threads),
        "AISTACK_STT_BEAM_SIZE": "5",
        "AISTACK_STT_LOG_LEVEL": "warning",
        "AISTACK_STT_WYOMING_ENABLED": "true",
        "AISTACK_STT_WYOMING_HOST": "127.0.0.1",
        "AISTACK_STT_WYOMING_PORT": str(wyoming_port),
        **extra,
    }, timeout=120)
    return server, wyoming_port


def start_wfw(
    python: str, model_dir: Path, threads: int, model: str = "tiny.en"
) -> tuple[subprocess.Popen, int]:
    port = free_port()
    argv = [
        python, "-m", "wyoming_faster_whisper",
        "--uri", f"tcp://127.0.0.1:{port}",
        "--model", str(model_dir / model),
        "--data-dir", str(model_dir),
        "--device", "cpu",
        "--compute-type", "int8",
        "--cpu-threads", str(threads),
        "--beam-size", "5",
        "--language", "en",
        "--local-files-only",
    ]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    return wait_wyoming(subprocess.Popen(argv, env=env), port, "wyoming-faster-whisper")


def wait_wyoming(proc: subprocess.Popen, port: int, name: str) -> tuple[subprocess.Popen, int]:
    """`proc` and `port` once the Wyoming server `name` answers `describe` (120 s at most);
    stops it and exits when it does not."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            asyncio.run(asyncio.wait_for(_describe(port), 5))
            return proc, port
        except (OSError, TimeoutError):
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit(f"{name} did not start; run it by hand to see why")


async def _describe(port: int) -> None:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Describe().event())
        while (event := await client.read_event()) is not None and event.type != "info":
            pass


async def _wyoming(port: int, pcm: bytes) -> str:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(RATE, WIDTH, CHANNELS).event())
        step = RATE * WIDTH * CHANNELS // 50  # 20 ms
        for i in range(0, len(pcm), step):
            await client.write_event(AudioChunk(RATE, WIDTH, CHANNELS, pcm[i : i + step]).event())
        await client.write_event(AudioStop().event())
        while (event := await client.read_event()) is not None:
            if Transcript.is_type(event.type):
                return Transcript.from_event(event).text
            if event.type == "error":
                raise SystemExit(f"Wyoming error: {event.data}")
    raise SystemExit("the Wyoming server closed the connection without a transcript")


def timed(call: Callable[[], str]) -> tuple[float, str]:
    started = time.perf_counter()
    text = call()
    return time.perf_counter() - started, text


def http_call(url: str, wav: bytes) -> str:
    resp = httpx.post(
        url + "/v1/audio/transcriptions",
        files={"file": ("command.wav", wav, "audio/wav")},
        data={"model": "whisper-1", "language": "en"},
        timeout=120,
    )
    resp.raise_for_status()
    return resp.json()["text"]


def report(times: dict[str, list[float]], audio_s: float, runs: int, load: tuple) -> str:
    med = {name: statistics.median(values) for name, values in times.items()}

    def ratio(a: str, b: str) -> float:
        return statistics.median(x / y for x, y in zip(times[a], times[b], strict=True))

    rows = ["| path | median s | ratio to aistack-stt HTTP (median of rounds) |", "|---|---|---|"]
    for name in times:
        rows.append(f"| {name} | {med[name]:.3f} | {ratio(name, 'aistack-stt HTTP'):.3f} |")
    verdict = ratio("aistack-stt Wyoming", "aistack-stt HTTP")
    intro = (
        f"A {audio_s:.1f} s voice command (espeak-ng, 16 kHz mono s16), {runs} rounds, each "
        "target once per round in a shuffled order, each request on a new connection: Wyoming "
        "as 20 ms audio-chunk events sent back to back, HTTP as a WAV upload of the same "
        "samples. tiny.en, int8, beam 5, 2 CPU threads, language en. Measured by "
        f"`bench/stt_wyoming.py` on {datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, "
        f"{os.cpu_count()} cores, load average {load[0]:.1f} before / {load[1]:.1f} after: a "
        "machine shared with other work, so read the ratios, not the absolute times."
    )
    verdict_text = (
        f"Wyoming / HTTP on one server: {verdict:.3f} (target at most {TARGET:.2f}; "
        f"{'met' if verdict <= TARGET else 'NOT met'})."
    )
    if "wyoming-faster-whisper" in times:
        verdict_text += (
            " wyoming-faster-whisper 3.8.1 from PyPI installs here and serves the same model "
            "directory (`--model <dir>/tiny.en --local-files-only`, int8, beam 5, 2 threads, "
            "language en, its VAD options off as by default); it writes each request's audio "
            "to a WAV file and hands the path to faster-whisper."
        )
    return "\n".join(
        [
            SECTION,
            "",
            *textwrap.wrap(intro, 88),
            "",
            *rows,
            "",
            *textwrap.wrap(verdict_text, 88),
            "",
        ]
    )


def main() -> int:
    parser = stt_parser(__doc__, runs=21)
    parser.add_argument("--wfw-python", help="python of a venv with wyoming-faster-whisper")
    args = parser.parse_args()
    ensure_test_models(args.model_dir)

    with tempfile.TemporaryDirectory() as tmp, servers() as procs:
        pcm, wav_path, audio_s = make_clip(Path(tmp))
        wav = wav_path.read_bytes()
        server, wyoming_port = start_aistack(args.model_dir, args.threads)
        procs.append(server.proc)
        url = server.url
        targets: dict[str, Callable[[], str]] = {
            "aistack-stt HTTP": lambda: http_call(url, wav),
            "aistack-stt Wyoming": lambda: asyncio.run(_wyoming(wyoming_port, pcm)),
        }
        if args.wfw_python:
            wfw, wfw_port = start_wfw(args.wfw_python, args.model_dir, args.threads)
            procs.append(wfw)
            targets["wyoming-faster-whisper"] = lambda: asyncio.run(_wyoming(wfw_port, pcm))
        for call in targets.values():  # warm-up: first loads, first allocations
            for _ in range(2):
                call()
        load_before = os.getloadavg()[0]
        times: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(args.runs):
            order = list(targets)
            random.shuffle(order)
            for name in order:
                elapsed, text = timed(targets[name])
                if "kitchen" not in text.lower():
                    raise SystemExit(f"{name} heard {text!r}, not the command")
                times[name].append(elapsed)
        load_after = os.getloadavg()[0]
    load = (load_before, load_after)
    return publish(SECTION, report(times, audio_s, args.runs, load), args.write)


if __name__ == "__main__":
    sys.exit(main())
