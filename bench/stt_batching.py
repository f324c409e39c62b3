#!/usr/bin/env python3
"""What one CTranslate2 call costs per 30 s window as the batch grows (encoder and decoder).

    .venv/bin/python bench/stt_batching.py [--model-dir .cache/models/tiny.en] [--repeat 3]

This is the measurement behind AISTACK_STT_MAX_BATCH: on CPU the encoder costs about the same
per window at any batch size (it is compute-bound), while the decoder's per-token steps are
small matrix products that a batch shares. Each figure is the best of --repeat runs, so that
other processes on the machine inflate it as little as possible.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TEXT = (
    "A speech server in a small home lab gets bursts of requests from a family talking to "
    "their assistant, while someone transcribes a long recording of a meeting."
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default=str(ROOT / ".cache/models/tiny.en"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--beam-size", type=int, default=5)
    args = parser.parse_args()

    from aistack_stt.batching import BatchDecoder, DecodeOptions, Window
    from faster_whisper import WhisperModel, decode_audio

    with tempfile.TemporaryDirectory() as d:
        wav = Path(d) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), TEXT], check=True)
        audio = decode_audio(str(wav))
    model = WhisperModel(args.model_dir, device="cpu", compute_type="int8")
    decoder = BatchDecoder(model)
    options = DecodeOptions(beam_size=args.beam_size, temperatures=(0.0,))
    window = Window(audio, 0.0, audio.shape[0] / 16000, "en")
    frames = model.feature_extractor.nb_max_frames
    feats = model.feature_extractor(audio)[..., :-1]
    feats = np.pad(feats, ((0, 0), (0, frames - feats.shape[1])))
    print(f"clip {window.duration:.1f} s, beam {args.beam_size}, best of {args.repeat}")
    print("| batch | encode / window | whole decode / window | speed-up vs batch 1 |")
    print("|---|---|---|---|")
    base = None
    for size in args.sizes:
        enc_best = total_best = float("inf")
        for _ in range(args.repeat):
            batch = np.repeat(feats[None], size, axis=0)
            t = time.perf_counter()
            model.encode(batch)
            enc_best = min(enc_best, (time.perf_counter() - t) / size)
            t = time.perf_counter()
            results = decoder.decode([window] * size, options)
            total_best = min(total_best, (time.perf_counter() - t) / size)
        assert all(r.segments for r in results)
        base = base or total_best
        print(
            f"| {size} | {enc_best * 1000:.0f} ms | {total_best * 1000:.0f} ms | "
            f"{base / total_best:.2f}× |"
        )


if __name__ == "__main__":
    main()
