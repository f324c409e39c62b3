#!/usr/bin/env python3
"""What one CTranslate2 call costs per 30 s window as the batch grows (encoder and decoder).

    .venv/bin/python bench/stt_batching.py [--model-dir .cache/models/tiny.en] [--repeat 3]
    .venv/bin/python bench/stt_batching.py --layouts 1x2 2x1 [--windows 16] [--batch 4]

This is the measurement behind AISTACK_STT_MAX_BATCH: on CPU the encoder costs about the same
per window at any batch size (it is compute-bound), while the decoder's per-token steps are
small matrix products that a batch shares. Each figure is the best of --repeat runs, so that
other processes on the machine inflate it as little as possible.

With --layouts it measures AISTACK_STT_BULK_WORKERS instead: `--windows` windows decoded in
batches of `--batch` by W worker threads over one model with W CTranslate2 replicas of T
threads each (`WxT`), the median of --repeat runs.
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
    parser.add_argument("--layouts", nargs="+", metavar="WxT", help="e.g. 1x2 2x1")
    parser.add_argument("--windows", type=int, default=16)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()

    from aistack_stt.batching import BatchDecoder, DecodeOptions, Window
    from faster_whisper import WhisperModel, decode_audio

    with tempfile.TemporaryDirectory() as d:
        wav = Path(d) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(wav), TEXT], check=True)
        audio = decode_audio(str(wav))
    options = DecodeOptions(beam_size=args.beam_size, temperatures=(0.0,))
    window = Window(audio, 0.0, audio.shape[0] / 16000, "en")
    if args.layouts:
        layouts(args, window, options)
        return
    model = WhisperModel(args.model_dir, device="cpu", compute_type="int8")
    decoder = BatchDecoder(model)
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


def layouts(args, window, options) -> None:
    import threading

    from aistack_stt.batching import BatchDecoder
    from faster_whisper import WhisperModel

    print(
        f"clip {window.duration:.1f} s, {args.windows} windows in batches of {args.batch}, "
        f"beam {args.beam_size}, median of {args.repeat}"
    )
    print("| workers x threads | wall | per window |")
    print("|---|---|---|")
    for layout in args.layouts:
        workers, threads = (int(n) for n in layout.lower().split("x"))
        model = WhisperModel(
            args.model_dir,
            device="cpu",
            compute_type="int8",
            cpu_threads=threads,
            num_workers=workers,
        )
        decoders = [BatchDecoder(model) for _ in range(workers)]
        decoders[0].decode([window], options)  # warm-up
        walls = []
        for _ in range(args.repeat):
            sizes = [args.batch] * (args.windows // args.batch)
            lock = threading.Lock()

            def work(decoder, sizes=sizes, lock=lock) -> None:
                while True:
                    with lock:
                        if not sizes:
                            return
                        size = sizes.pop()
                    decoder.decode([window] * size, options)

            t = time.perf_counter()
            pool = [threading.Thread(target=work, args=(d,)) for d in decoders]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join()
            walls.append(time.perf_counter() - t)
        wall = sorted(walls)[len(walls) // 2]
        print(f"| {workers} x {threads} | {wall:.2f} s | {wall / args.windows * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
