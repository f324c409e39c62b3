#!/usr/bin/env python3
"""Live sessions at real-time pace, one model against a fast interim model + an accurate one.

Usage: .venv/bin/python bench/stt_live_dual.py [--sessions 1,4,8] [--utterances 3] [--rounds 3]
       [--write]

Two `aistack-stt serve` processes side by side, on the same machine and model directory:
- single: `base` for everything (interims and finals), as a server without --interim-model;
- dual: `base` for finals, `--interim-model tiny.en` for interims.
Each session speaks two_stt's protocol (`WS /ws`, 40 ms PCM16 frames at real-time pace): a
spoken command (espeak-ng), 1.5 s of silence, again, then `stop`. Sessions of one round start
within 1 s of each other. Measured per session, from the client's side:
- interim cadence: seconds between consecutive interims of one utterance;
- interim latency: arrival of an interim minus the moment the newest audio it covers (`t1`)
  was sent, i.e. how stale the words on screen are;
- final latency: arrival of an utterance's final minus the moment its speech ended (the
  clip's end, known from the synthesized audio) was sent; VAD's silence (500 ms) is in it.
`--write` replaces the `## Live sessions: fast interims, accurate finals` section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import websockets
from benchdoc import publish, servers, start_process
from faster_whisper import decode_audio

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## Live sessions: fast interims, accurate finals"
COMMAND = "Please set a timer for ten minutes and turn on the kitchen lights."
FRAME_S = 0.04
LEAD_S, PAUSE_S = 0.5, 1.5


def make_audio(tmp: Path, utterances: int) -> tuple[bytes, list[float]]:
    """PCM16 16 kHz of the conversation, and where each utterance's speech ends (seconds)."""
    wav = tmp / "command.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(wav), COMMAND], check=True)
    clip = decode_audio(str(wav), sampling_rate=16000)
    parts, ends, at = [np.zeros(int(LEAD_S * 16000), np.float32)], [], LEAD_S
    for _ in range(utterances):
        parts += [clip, np.zeros(int(PAUSE_S * 16000), np.float32)]
        ends.append(at + len(clip) / 16000)
        at += len(clip) / 16000 + PAUSE_S
    audio = np.concatenate(parts)
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes(), ends


def start_server(
    model_dir: Path, interim: str | None, threads: int
) -> tuple[subprocess.Popen, str]:
    """aistack-stt (this checkout) with base for finals and `interim` for interims, once ready."""
    settings = {
        "AISTACK_STT_MODEL": "base",
        "AISTACK_STT_MODEL_DIR": str(model_dir),
        "AISTACK_STT_DEVICE": "cpu",
        "AISTACK_STT_CPU_THREADS": str(threads),
        "AISTACK_STT_LANGUAGE": "en",
        "AISTACK_STT_STREAM_MAX_SESSIONS_PER_CLIENT": "16",
        "AISTACK_STT_LOG_LEVEL": "warning",
        "AISTACK_STT_INTERIM_MODEL": interim,
    }
    server = start_process(settings, timeout=300)
    return server.proc, server.url


async def session(url: str, audio: bytes, ends: list[float], delay: float) -> dict:
    await asyncio.sleep(delay)
    frame = int(FRAME_S * 16000) * 2
    interims: list[tuple[float, float, int]] = []  # arrival, t1, utterance index by finals
    finals: list[float] = []
    # No keepalive pings: on a saturated machine a late pong is not a dead server.
    ws_url = url.replace("http", "ws") + "/ws"
    async with websockets.connect(ws_url, max_size=None, ping_interval=None) as ws:
        await ws.send(json.dumps({"event": "start", "language": "en"}))
        began = time.monotonic()

        async def read() -> None:
            async for raw in ws:
                message, now = json.loads(raw), time.monotonic()
                if message["type"] == "interim":
                    interims.append((now, message["t1"], len(finals)))
                elif message["type"] == "final":
                    finals.append(now)

        reader = asyncio.create_task(read())
        try:
            for n, i in enumerate(range(0, len(audio), frame)):
                await ws.send(audio[i : i + frame])
                await asyncio.sleep(max(0.0, began + (n + 1) * FRAME_S - time.monotonic()))
            await ws.send(json.dumps({"event": "stop"}))
            await asyncio.wait_for(reader, 600)
        except websockets.ConnectionClosed:  # counted: its missing finals show in the table
            reader.cancel()
    lags = [now - (began + t1) for now, t1, _ in interims]
    cadence = []
    for utterance in {u for _, _, u in interims}:
        times = [now for now, _, u in interims if u == utterance]
        cadence += [b - a for a, b in zip(times, times[1:], strict=False)]
    final_lags = [arrival - (began + end) for arrival, end in zip(finals, ends, strict=False)]
    return {"lags": lags, "cadence": cadence, "finals": final_lags, "count": len(finals)}


def p95(values: list[float]) -> float:
    return float(np.percentile(values, 95)) if values else float("nan")


async def round_(url: str, audio: bytes, ends: list[float], sessions: int) -> dict:
    delays = [i / max(1, sessions) for i in range(sessions)]  # all start within 1 s
    return {
        "results": await asyncio.gather(*(session(url, audio, ends, d) for d in delays)),
        "expected": sessions * len(ends),
    }


def pooled(rounds: list[dict]) -> dict:
    """Every round of one mode and session count together: the samples, then their figures."""
    results = [r for one in rounds for r in one["results"]]
    lags = [x for r in results for x in r["lags"]]
    cadence = [x for r in results for x in r["cadence"]]
    finals = [x for r in results for x in r["finals"]]
    return {
        "interims": len(lags),
        "cadence": statistics.median(cadence) if cadence else float("nan"),
        "lag_p50": statistics.median(lags) if lags else float("nan"),
        "lag_p95": p95(lags),
        "final_p50": statistics.median(finals) if finals else float("nan"),
        "final_p95": p95(finals),
        "finals": sum(r["count"] for r in results),
        "expected": sum(one["expected"] for one in rounds),
    }


MODES = (("single (base)", None), ("dual (tiny.en + base)", "tiny.en"))
TARGET_LAG_S, TARGET_SESSIONS = 0.5, 4


def verdict(figures: dict) -> list[str]:
    single, dual = MODES[0][0], MODES[1][0]
    lines = []
    if (dual, TARGET_SESSIONS) in figures:
        lag = figures[(dual, TARGET_SESSIONS)]["lag_p95"]
        met = "met" if lag <= TARGET_LAG_S else "NOT met"
        lines.append(
            f"Interim lag p95 with the dual model at {TARGET_SESSIONS} sessions: {lag:.2f} s "
            f"(target at most {TARGET_LAG_S} s; {met})."
        )
    for (mode, n), r in sorted(figures.items(), key=lambda item: item[0][1]):
        if mode != dual or (single, n) not in figures:
            continue
        ratio = r["final_p50"] / figures[(single, n)]["final_p50"]
        met = "met" if ratio <= 1.0 else "NOT met"
        lines.append(
            f"End of speech to final, dual / single p50 at {n} session(s): {ratio:.2f}x "
            f"(target: no worse than the single accurate model; {met})."
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1,4,8")
    parser.add_argument("--utterances", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", type=Path, default=ROOT / ".cache" / "models")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    counts = [int(n) for n in args.sessions.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        audio, ends = make_audio(Path(tmp), args.utterances)
    runs: dict[tuple[str, int], list[dict]] = {}
    load_before = os.getloadavg()[0]
    with servers() as procs:
        urls = {}
        for mode, interim in MODES:  # both up at once, so that their rounds interleave
            proc, urls[mode] = start_server(args.models, interim, args.threads)
            procs.append(proc)
        for _ in range(args.rounds):
            for n in counts:
                for mode in random.sample(list(urls), len(urls)):
                    r = asyncio.run(round_(urls[mode], audio, ends, n))
                    runs.setdefault((mode, n), []).append(r)
                    print(mode, n, len(runs[(mode, n)]), flush=True)
    figures = {key: pooled(rounds) for key, rounds in runs.items()}
    table = [
        "| mode | sessions | interims | cadence (median, s) | interim lag p50 / p95 (s) "
        "| end of speech → final p50 / p95 (s) | finals |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, _ in MODES:
        for n in counts:
            r = figures[(mode, n)]
            print(mode, n, json.dumps({k: round(v, 3) for k, v in r.items()}), flush=True)
            table.append(
                f"| {mode} | {n} | {r['interims']} | {r['cadence']:.2f} | {r['lag_p50']:.2f} / "
                f"{r['lag_p95']:.2f} | {r['final_p50']:.2f} / {r['final_p95']:.2f} | "
                f"{r['finals']}/{r['expected']} |"
            )
    intro = (
        f"`bench/stt_live_dual.py`, {datetime.now(UTC):%Y-%m-%d}, {platform.machine()}, "
        f"{os.cpu_count()} cores, CPU int8, {args.threads} threads, language en. Each session "
        f"sends {args.utterances} spoken commands of {ends[0] - LEAD_S:.1f} s with 1.5 s "
        "pauses over `/ws` in 40 ms frames at real-time pace (2 interims/s asked). Both "
        f"servers run side by side; {args.rounds} rounds, each with every session count and "
        "the two servers in a shuffled order; each row pools its rounds' samples. Load average "
        f"(1 min) before: {load_before:.1f}, after: {os.getloadavg()[0]:.1f} (other work on "
        "the machine shares its cores)."
    )
    text = "\n".join(
        [SECTION, "", *textwrap.wrap(intro, 92), "", *table, "",
         *[line for v in verdict(figures) for line in [*textwrap.wrap(v, 92), ""]]]
    )
    publish(SECTION, text.rstrip() + "\n", args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
