#!/usr/bin/env python3
"""Silence gives no words, speech keeps them: the silence defaults measured on the corpus.

Usage: .venv/bin/python bench/stt_silence.py [--model DIR ...] [--write]

The generated corpus (bench/voice_corpus.py: commands and sentences in four espeak-ng voices,
the same speech with white, pink and brown noise under it, digital silence of 0.5-45 s, noise
of three colours at four levels, 50 Hz hum, a click) is posted to one aistack-stt server per
model twice, request by request: "before" with `vad_filter=false` (what the server did
before the speech gate: every clip reaches Whisper, with Whisper's own thresholds) and
"after" with the defaults. Reported: WER over the clips with speech, clips without speech
that came back with words, and median latency. Also the margin the VAD gate's defaults
leave: the least speech Silero VAD finds in a clip with speech against the most it finds in
a clip without. `--write` replaces the section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
import voice_corpus  # noqa: E402
from benchdoc import publish
from voice_path import ROOT, start_stt, stop  # noqa: E402

sys.path.insert(0, str(ROOT / "stt" / "src"))
from aistack_stt import silence  # noqa: E402
from aistack_stt.audio import decode  # noqa: E402

SECTION = "## Silence and noise: no invented words"
MODES = {"before": {"vad_filter": "false"}, "after": {}}


def measure(url: str, clips: list[voice_corpus.Clip]) -> dict:
    out = {m: {"edits": 0, "words": 0, "invented": [], "lat_speech": [], "lat_silent": [],
               "signals": []} for m in MODES}  # fmt: skip
    with httpx.Client(base_url=url, timeout=300) as http:
        for n, clip in enumerate(clips):
            data = clip.path.read_bytes()
            order = list(MODES) if n % 2 == 0 else list(MODES)[::-1]
            for mode in order:
                started = time.perf_counter()
                resp = http.post(
                    "/v1/audio/transcriptions",
                    files={"file": ("recording.wav", data, "audio/wav")},
                    data={"model": "whisper-1", "response_format": "verbose_json", **MODES[mode]},
                )
                elapsed = time.perf_counter() - started
                resp.raise_for_status()
                body = resp.json()
                text = body["text"]
                row = out[mode]
                if clip.text:
                    edits, words = voice_corpus.wer(clip.text, text)
                    row["edits"] += edits
                    row["words"] += words
                    row["lat_speech"].append(elapsed)
                else:
                    row["lat_silent"].append(elapsed)
                    if text.strip():
                        row["invented"].append(f"{clip.name}: {text.strip()!r}")
                        row["signals"] += [
                            (s["no_speech_prob"], s["avg_logprob"]) for s in body["segments"]
                        ]
    return out


def vad_margin(clips: list[voice_corpus.Clip]) -> tuple[float, str, float, str]:
    speech, quiet = [], []
    for clip in clips:
        ms = silence.speech_ms(decode(clip.path.read_bytes(), "audio/wav"))
        (speech if clip.text else quiet).append((ms, clip.name))
    low, high = min(speech), max(quiet)
    return low[0], low[1], high[0], high[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    models = args.model or [ROOT / ".cache" / "models" / "tiny.en"]
    work = Path(tempfile.mkdtemp(prefix="stt-silence-"))
    clips = voice_corpus.build(work / "corpus")
    speech_clips = sum(1 for c in clips if c.text)
    low, low_name, high, high_name = vad_margin(clips)
    d = silence.DEFAULT
    lines = [
        SECTION,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d} with `bench/stt_silence.py` on "
        f"{platform.node()} ({os.cpu_count()} cores, shared with other work). Corpus: "
        f"{len(clips)} generated clips, {speech_clips} with speech (commands and sentences in "
        f"{len(voice_corpus.VOICES)} espeak-ng voices, some with noise under them) and "
        f"{len(clips) - speech_clips} without (digital silence 0.5-45 s, white/pink/brown "
        "noise at four levels, 50 Hz hum, a click). Each clip was posted twice, alternating: "
        "*before* with `vad_filter=false` (every clip reaches Whisper), *after* with the "
        "defaults.",
        "",
        f"Speech gate (Silero VAD, threshold {d.vad_threshold}): the clip with speech where "
        f"it found the least speech had {low:.0f} ms (`{low_name}`); the clip without speech "
        f"where it found the most had {high:.0f} ms (`{high_name}`). The default "
        f"`vad_min_speech_ms` of {d.vad_min_speech_ms} sits between the two. Whisper's "
        f"thresholds keep their usual values (no_speech {d.no_speech_threshold}, log_prob "
        f"{d.log_prob_threshold}, compression ratio {d.compression_ratio_threshold}); the "
        "signals Whisper gave for the words it invented are listed below the table.",
        "",
        "| model | mode | WER (speech clips) | clips without speech that got words | "
        "median s, speech | median s, no speech |",
        "|---|---|---:|---:|---:|---:|",
    ]
    invented = {}
    for model in models:
        proc, url = start_stt(model, work / f"stt-{model.name}.log")
        try:
            result = measure(url, clips)
        finally:
            stop(proc)
        for mode, row in result.items():
            lines.append(
                f"| {model.name} | {mode} | {row['edits'] / max(row['words'], 1):.3f} | "
                f"{len(row['invented'])} of {len(clips) - speech_clips} | "
                f"{statistics.median(row['lat_speech']):.3f} | "
                f"{statistics.median(row['lat_silent']):.3f} |"
            )
            invented[(model.name, mode)] = (row["invented"], row["signals"])
    lines += ["", "Words invented where nobody spoke:", ""]
    for (model, mode), (items, signals) in invented.items():
        line = f"- {model}, {mode}: " + ("; ".join(items) if items else "none")
        if signals:
            ns, lp = [x for x, _ in signals], [y for _, y in signals]
            line += (
                f" (Whisper's no-speech probability {min(ns):.2f}-{max(ns):.2f}, average "
                f"log-probability {min(lp):.2f} to {max(lp):.2f})"
            )
        lines.append(line)
    lines.append("")
    text = "\n".join(lines)
    publish(SECTION, text, args.write)
    return 0


if __name__ == "__main__":
    sys.exit(main())
