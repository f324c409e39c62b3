#!/usr/bin/env python3
"""Single-request latency: aistack-stt over HTTP versus faster-whisper called directly.

Usage: .venv/bin/python bench/bench_stt_latency.py [--runs N] [--model DIR] [--write]

Both sides use the same model directory, device, compute type, thread count and decoding
options (beam 5, faster-whisper's temperature fallback, no VAD), on the same two clips
synthesized with espeak-ng: a ~2 s voice command and a ~25 s passage. The server runs as a
separate `aistack-stt serve` process, as in production; requests alternate with direct calls
so background load on a shared machine hits both sides alike. The target is that the server
adds no more than 10 % at the median. `--write` replaces the `## aistack-stt latency` section
of docs/benchmarks.md with the table.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from benchdoc import publish, start_process
from faster_whisper import WhisperModel

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## aistack-stt latency"
TARGET = 0.10

COMMAND = "Turn on the kitchen lights."
PASSAGE = (
    "Good morning everyone. Today we will look at the plan for the garden. In spring we "
    "plant tomatoes, beans and peppers along the southern fence, where the sun stays longest. "
    "The herbs go near the kitchen door so they are easy to reach while cooking. In summer the "
    "beds need water every evening, and the compost should be turned once a week. Please write "
    "down any questions and we will answer them at the end."
)


@dataclass(frozen=True)
class Row:
    clip: str
    audio_s: float
    direct: list[float]
    server: list[float]

    @property
    def overhead(self) -> float:
        return statistics.median(self.server) / statistics.median(self.direct) - 1

    @property
    def paired_overhead(self) -> float:
        """Median over runs of server/direct for back-to-back pairs: robust to load drift."""
        return statistics.median(s / d for s, d in zip(self.server, self.direct, strict=True)) - 1


def synthesize(text: str, out: Path) -> Path:
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(out), text], check=True)
    return out


def audio_seconds(path: Path) -> float:
    out = subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True, check=True)
    return float(out.stdout)


def start_server(model: Path, threads: int):
    """`aistack-stt serve` (this checkout's code) as a process of its own, once ready."""
    return start_process({
        "AISTACK_STT_MODEL": str(model),
        "AISTACK_STT_DEVICE": "cpu",
        "AISTACK_STT_COMPUTE_TYPE": "int8",
        "AISTACK_STT_CPU_THREADS": str(threads),
        "AISTACK_STT_BEAM_SIZE": "5",
        "AISTACK_STT_LOG_LEVEL": "warning",
    }, timeout=120)


def direct(model: WhisperModel, clip: Path) -> tuple[float, str]:
    started = time.perf_counter()
    segments, _ = model.transcribe(str(clip), beam_size=5)
    text = "".join(s.text for s in segments)
    return time.perf_counter() - started, text


def served(http: httpx.Client, clip: Path) -> tuple[float, str]:
    data = clip.read_bytes()
    started = time.perf_counter()
    resp = http.post(
        "/v1/audio/transcriptions",
        files={"file": (clip.name, data, "audio/wav")},
        data={"model": "whisper-1"},
    )
    elapsed = time.perf_counter() - started
    resp.raise_for_status()
    return elapsed, resp.json()["text"]


def measure(model: WhisperModel, http: httpx.Client, name: str, clip: Path, runs: int) -> Row:
    for _ in range(2):  # warm caches and allocators on both sides
        direct(model, clip)
        served(http, clip)
    d, s = [], []
    for i in range(runs):
        # Alternate which side goes first so drift in background load cancels out.
        order = (direct, served) if i % 2 == 0 else (served, direct)
        for fn in order:
            elapsed, _ = fn(model, clip) if fn is direct else fn(http, clip)
            (d if fn is direct else s).append(elapsed)
    return Row(name, audio_seconds(clip), d, s)


def table(rows: list[Row], threads: int, runs: int, model: Path, load: tuple[float, float]) -> str:
    cpu = platform.processor() or platform.machine()
    intro = (
        "Run it with `.venv/bin/python bench/bench_stt_latency.py --runs 15 --write` (needs "
        "espeak-ng and sox; fetches the test models when missing). *Direct* is "
        "`WhisperModel.transcribe()` on the WAV file inside the benchmark process; *server* is "
        "one `POST /v1/audio/transcriptions` to a separate `aistack-stt serve` process (upload, "
        "multipart, decode, scheduler, transcription, JSON) over local HTTP. Both use the same "
        "model directory, int8 on CPU, the same thread count and decoding options (beam 5, "
        "temperature fallback, no VAD); the passage, being longer than 15 s, takes the server's "
        "bulk lane, which shares those threads out among its workers (one each with 2). Runs "
        "alternate in back-to-back pairs after 2 warm-ups. "
        "Target: the server adds at most 10 % at the median, judged on the ratio of medians; "
        "the median of the per-pair ratios is shown too, as it is less affected by load drift."
    )
    measured = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {os.cpu_count()} cores ({cpu}) "
        f"shared with other work (load average {load[0]:.1f} before, {load[1]:.1f} after); "
        f"model `{model.name}`, {threads} threads, {runs} pairs for the command and "
        f"{max(5, runs // 2)} for the passage:"
    )
    lines = [SECTION, "", *textwrap.wrap(intro, 88), "", *textwrap.wrap(measured, 88), ""]
    lines += [
        "| clip | audio | direct median | server median | direct p90 | server p90 "
        "| overhead (ratio of medians) | overhead (median of pairs) | target |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p90 = lambda xs: sorted(xs)[max(0, round(0.9 * len(xs)) - 1)]  # noqa: E731
        lines.append(
            f"| {r.clip} | {r.audio_s:.1f} s | {statistics.median(r.direct):.3f} s "
            f"| {statistics.median(r.server):.3f} s | {p90(r.direct):.3f} s "
            f"| {p90(r.server):.3f} s | {r.overhead * 100:+.1f} % "
            f"| {r.paired_overhead * 100:+.1f} % "
            f"| {'met' if r.overhead <= TARGET else 'MISSED'} |"
        )
    lines += ["", *textwrap.wrap(NOTES, 88)]
    return "\n".join(lines) + "\n"


NOTES = (
    "Only figures from a quiet machine are worth comparing: with a load average far above the"
    " core count the absolute times mostly show how busy the machine was (tiny.en needs about"
    " 0.4 s for the command on an idle 2-core machine), and three runs at load averages of "
    "11-17 gave +8.5 % to +13.4 % for the command and -10 % to +23 % for the passage. The "
    "server's own share (total minus the transcription time it reports in "
    "`aistack_stt_real_time_factor`) was 0.05-0.3 s per request under that load. Two findings"
    " from this benchmark are fixed in the server: faster-whisper's `decode_audio` runs "
    "`gc.collect()` on every call, which cost 250 ms per request in the server process "
    "(aistack-stt decodes with PyAV itself), and a model built on a thread that later exits "
    "decoded 2-3x slower (models are built on one long-lived loader thread)."
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--model", type=Path, default=ROOT / ".cache" / "models" / "tiny.en")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    if not (args.model / "model.bin").is_file():
        subprocess.run([str(ROOT / "scripts" / "fetch-test-models")], check=True)

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        command = synthesize(COMMAND, Path(tmp) / "command.wav")
        passage = synthesize(PASSAGE, Path(tmp) / "passage.wav")
        model = WhisperModel(
            str(args.model), device="cpu", compute_type="int8", cpu_threads=args.threads
        )
        server = start_server(args.model, args.threads)
        try:
            with httpx.Client(base_url=server.url, timeout=300) as http:
                rows = [
                    measure(model, http, "command", command, args.runs),
                    measure(model, http, "passage", passage, max(5, args.runs // 2)),
                ]
        finally:
            server.stop(timeout=30)
    load = (load_before, os.getloadavg()[0])
    text = table(rows, args.threads, args.runs, args.model, load)
    publish(SECTION, text, args.write)
    return 0 if all(r.overhead <= TARGET for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
