#!/usr/bin/env python3
"""Plot bench/stt_load.py results: throughput per burst size, and command latency under load.

    bench/.venv-fws/bin/python bench/stt_load_plot.py bench/results/stt_load/results.json \
        docs/img/stt_load.png

Runs with any Python that has matplotlib (the controller venv does not carry it; the
faster-whisper-server bench venv does).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src: str, dest: str) -> None:
    report = json.loads(Path(src).read_text())
    targets = list(report["targets"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.8 / len(targets)
    profiles = [
        r["profile"] for r in report["targets"][targets[0]]["results"] if r["profile"] != "mixed"
    ]
    for i, name in enumerate(targets):
        by = {r["profile"]: r for r in report["targets"][name]["results"]}
        xs = [j + i * width for j in range(len(profiles))]
        left.bar(xs, [by[p]["audio_per_s"] if p in by else 0 for p in profiles], width, label=name)
        for x, p in zip(xs, profiles, strict=True):
            if p in by and by[p]["failed"]:
                left.text(
                    x,
                    by[p]["audio_per_s"],
                    f"{by[p]['failed']} failed",
                    rotation=90,
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    left.set_xticks([j + width * (len(targets) - 1) / 2 for j in range(len(profiles))])
    left.set_xticklabels(
        [
            f"{p}\n({report['targets'][targets[0]]['results'][j]['clip']})"
            for j, p in enumerate(profiles)
        ],
        fontsize=8,
    )
    left.set_ylabel("seconds of audio transcribed per second")
    left.set_title("Throughput (higher is better)")
    left.legend(fontsize=8)

    labels, idle, p50, p95 = [], [], [], []
    for name in targets:
        by = {r["profile"]: r for r in report["targets"][name]["results"]}
        if "mixed" in by:
            m = by["mixed"]
            labels.append(name)
            idle.append(m["extra"]["idle_p50_s"])
            p50.append(m["p50_s"])
            p95.append(m["p95_s"])
    xs = range(len(labels))
    right.bar([x - 0.27 for x in xs], idle, 0.27, label="idle p50")
    right.bar(list(xs), p50, 0.27, label="under load p50")
    right.bar([x + 0.27 for x in xs], p95, 0.27, label="under load p95")
    right.plot(
        [x - 0.45 for x in xs],
        [2 * v for v in idle],
        "k_",
        markersize=20,
        label="target: 2 × idle p50",
    )
    right.set_yscale("log")
    right.set_xticks(list(xs))
    right.set_xticklabels(labels, fontsize=8)
    right.set_ylabel("seconds (log scale)")
    right.set_title("Voice-command latency while 4 long recordings run")
    right.legend(fontsize=8)
    fig.suptitle(
        f"tiny.en int8 on CPU, {report['host']['cpus']} cores, {report['started']}", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(dest, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
