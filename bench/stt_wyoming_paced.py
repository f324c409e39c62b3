#!/usr/bin/env python3
"""A voice command streamed as a satellite streams it: how long after `audio-stop` the
transcript comes, aistack-stt against wyoming-faster-whisper 3.8.1.

Usage: .venv/bin/python bench/stt_wyoming_paced.py --wfw-python PY [--runs N] [--write]

The command (espeak-ng, 16 kHz mono s16) goes out as 20 ms `audio-chunk` events at real-time
pace, followed by 0.7 s of silence, then `audio-stop`: Home Assistant's voice pipeline ends
a command after 0.7 s of silence (its default VAD sensitivity), so a satellite's request
ends that way. The time measured runs from writing `audio-stop` to reading `transcript`.
aistack-stt runs with its defaults (early decode on: its VAD starts the final decode when
the speech ends, `wyoming_vad_silence_ms` 250); wyoming-faster-whisper 3.8.1 (PyPI) with
its defaults too (it decodes after `audio-stop`). Both serve the same model directory, int8,
beam 5, the same threads, language en; tiny.en and base. Rounds interleave the two in a
shuffled order; the report gives p50 and p95 per server and the ratio of p50s. Target:
aistack-stt at most 0.5x wyoming-faster-whisper. `--write` replaces the
`## Wyoming: answer after audio-stop` section of docs/benchmarks.md.
"""

from __future__ import annotations

import asyncio
import os
import platform
import random
import statistics
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from benchdoc import ensure_test_models, publish, servers, stt_parser
from stt_wyoming import CHANNELS, RATE, WIDTH, make_clip, start_aistack, start_wfw
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Wyoming: answer after audio-stop"
TARGET = 0.5
TRAILING_SILENCE_S = 0.7  # Home Assistant's VoiceCommandSegmenter, default sensitivity
CHUNK = RATE * WIDTH * CHANNELS // 50  # 20 ms
EARLY: dict[str, tuple[int, int]] = {}  # model -> (answers from the early decode, answers)


async def paced(port: int, pcm: bytes) -> tuple[float, str]:
    """Seconds from audio-stop to the transcript, and the transcript."""
    audio = pcm + b"\0" * (int(RATE * TRAILING_SILENCE_S) * WIDTH * CHANNELS)
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(RATE, WIDTH, CHANNELS).event())
        began = time.perf_counter()
        for n, i in enumerate(range(0, len(audio), CHUNK)):
            await asyncio.sleep(max(0.0, began + n * 0.02 - time.perf_counter()))
            await client.write_event(
                AudioChunk(RATE, WIDTH, CHANNELS, audio[i : i + CHUNK]).event()
            )
        await asyncio.sleep(max(0.0, began + len(audio) / (RATE * WIDTH) - time.perf_counter()))
        await client.write_event(AudioStop().event())
        stopped = time.perf_counter()
        while (event := await client.read_event()) is not None:
            if Transcript.is_type(event.type):
                return time.perf_counter() - stopped, Transcript.from_event(event).text
            if event.type == "error":
                raise SystemExit(f"Wyoming error: {event.data}")
    raise SystemExit("the Wyoming server closed the connection without a transcript")


def _early_answers(url: str) -> int:
    """How many answers came from a decode started before audio-stop (/metrics)."""
    metrics = httpx.get(url + "/metrics", timeout=10).text
    for line in metrics.splitlines():
        if line.startswith('aistack_stt_wyoming_decodes_total{decoded="early"}'):
            return int(float(line.split()[-1]))
    return 0


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def measure(model: str, args, pcm: bytes) -> dict[str, list[float]]:
    with servers() as procs:
        server, ours = start_aistack(args.model_dir, args.threads, model)
        procs.append(server.proc)
        url = server.url
        wfw, theirs = start_wfw(args.wfw_python, args.model_dir, args.threads, model)
        procs.append(wfw)
        ports = {"aistack-stt": ours, "wyoming-faster-whisper": theirs}
        for port in ports.values():  # warm-up: first loads, first allocations
            asyncio.run(paced(port, pcm))
        times: dict[str, list[float]] = {name: [] for name in ports}
        for _ in range(args.runs):
            order = list(ports)
            random.shuffle(order)
            for name in order:
                elapsed, text = asyncio.run(paced(ports[name], pcm))
                if "kitchen" not in text.lower():
                    raise SystemExit(f"{name} ({model}) heard {text!r}, not the command")
                times[name].append(elapsed)
        EARLY[model] = (_early_answers(url), args.runs + 1)
        return times


def report(results: dict[str, dict[str, list[float]]], audio_s: float, args, load) -> str:
    rows = [
        "| model | server | p50 s | p95 s | p50 ratio to wyoming-faster-whisper |",
        "|---|---|---|---|---|",
    ]
    verdicts: list[str] = []
    rows_note: list[str] = []
    for model, times in results.items():
        anchor = statistics.median(times["wyoming-faster-whisper"])
        for name, values in times.items():
            ratio = statistics.median(values) / anchor
            rows.append(
                f"| {model} | {name} | {statistics.median(values):.3f} | {p95(values):.3f} "
                f"| {ratio:.2f} |"
            )
        ratio = statistics.median(times["aistack-stt"]) / anchor
        verdicts.append(f"{model} {ratio:.2f} ({'met' if ratio <= TARGET else 'NOT met'})")
        if model in EARLY:
            rows_note.append(f"{model} {EARLY[model][0]} of {EARLY[model][1]}")
    intro = (
        f"A {audio_s:.1f} s voice command (espeak-ng, 16 kHz mono s16) streamed as a satellite "
        "streams it: 20 ms audio-chunk events at real-time pace, then "
        f"{TRAILING_SILENCE_S} s of silence (Home Assistant ends a command after 0.7 s of "
        "silence), then audio-stop; the time is from audio-stop to the transcript. "
        f"{args.runs} rounds per model, the two servers in a shuffled order each round, each "
        "request on a new connection; int8, beam 5, "
        f"{args.threads} CPU threads, language en, each server with its defaults. Measured by "
        f"`bench/stt_wyoming_paced.py` on {datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, "
        f"{os.cpu_count()} cores, load average {load[0]:.1f} before / {load[1]:.1f} after "
        "(a machine shared with other work)."
    )
    verdict = (
        "aistack-stt decodes while the user speaks: its VAD starts the final decode 0.25 s "
        "into the silence, and at audio-stop that decode is the answer. wyoming-faster-whisper "
        "3.8.1 (PyPI, `--model <dir>/<model> --local-files-only`) decodes after audio-stop. "
        f"p50 ratio, target at most {TARGET}: " + "; ".join(verdicts) + ". Answers that came "
        "from the early decode (aistack-stt's /metrics, warm-up included): "
        + "; ".join(rows_note)
        + "."
    )
    return "\n".join(
        [SECTION, "", *textwrap.wrap(intro, 88), "", *rows, "", *textwrap.wrap(verdict, 88), ""]
    )


def main() -> int:
    parser = stt_parser(__doc__, runs=20)
    parser.add_argument("--models", default="tiny.en,base")
    parser.add_argument("--wfw-python", required=True, help="python with wyoming-faster-whisper")
    args = parser.parse_args()
    ensure_test_models(args.model_dir)
    with tempfile.TemporaryDirectory() as tmp:
        pcm, _, audio_s = make_clip(Path(tmp))
    load_before = os.getloadavg()[0]
    results = {model: measure(model, args, pcm) for model in args.models.split(",")}
    text = report(results, audio_s, args, (load_before, os.getloadavg()[0]))
    publish(SECTION, text, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
