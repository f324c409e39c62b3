#!/usr/bin/env python3
"""Infrastructure bring-up time: two instances from nothing, then an unchanged re-run.

Usage: .venv/bin/python bench/bench_infra.py [--runs N] [--write]

Uses the two-machine inventory of the integration tests
(tests/integration/fixtures/infra: one domain, machines ai and web, the shape `aistack sync`
writes for the example infra.yml) on the test subnet 10.201.20.0/24 and the test project
t-infra-lab, so it never touches a real deployment. The image (local:aistack/debian-12) must
already be present, as the targets assume. Each run: destroy, time `playbooks/infra.yml`
from nothing (project, bridge, profiles, two instances started with their addresses, apt
reachable, CAs installed), time a second run and read its PLAY RECAP (must be changed=0),
then destroy. Targets: first run under 60 s, second under 20 s with changed=0.
`--write` replaces the `## Infrastructure` section of docs/benchmarks.md with the table.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchdoc import publish

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = ROOT / "tests" / "integration" / "fixtures" / "infra" / "inventory"
SECTION = "## Infrastructure"
UP_TARGET_S = 60.0
RERUN_TARGET_S = 20.0


@dataclass(frozen=True)
class Run:
    up_s: float
    rerun_s: float
    rerun_changed: int


def playbook(name: str) -> tuple[float, str]:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    cmd = [
        str(ROOT / ".venv" / "bin" / "ansible-playbook"),
        "-i",
        str(INVENTORY),
        str(ROOT / "playbooks" / name),
    ]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    took = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"{name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return took, proc.stdout


def changed_total(output: str) -> int:
    return sum(int(n) for n in re.findall(r"^\S+\s+:\s+ok=\d+\s+changed=(\d+)", output, re.M))


def one_run() -> Run:
    playbook("destroy.yml")
    up_s, _ = playbook("infra.yml")
    rerun_s, out = playbook("infra.yml")
    playbook("destroy.yml")
    return Run(up_s, rerun_s, changed_total(out))


def table(runs: list[Run]) -> str:
    up = statistics.median(r.up_s for r in runs)
    rerun = statistics.median(r.rerun_s for r in runs)
    changed = max(r.rerun_changed for r in runs)
    load = os.getloadavg()[0]
    cpu = platform.processor() or platform.machine()
    lines = [
        SECTION,
        "",
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC by `bench/bench_infra.py` on "
        f"{os.cpu_count()} cores ({cpu}), shared with other work (1-min load {load:.1f} at the "
        f"end); {len(runs)} run(s), median shown. Two instances (one domain) from the "
        "integration-test inventory, image `local:aistack/debian-12` already present. *Up* is "
        "`playbooks/infra.yml` from nothing to both machines running with their static "
        "addresses, apt reachable and the CA bundle installed; *re-run* is the same playbook "
        "again.",
        "",
        "| measure | result | target | |",
        "|---|---|---|---|",
        f"| two instances up | {up:.1f} s | < {UP_TARGET_S:.0f} s "
        f"| {'met' if up < UP_TARGET_S else 'MISSED'} |",
        f"| re-run | {rerun:.1f} s, changed={changed} | < {RERUN_TARGET_S:.0f} s, changed=0 "
        f"| {'met' if rerun < RERUN_TARGET_S and changed == 0 else 'MISSED'} |",
        "",
        "Each run: "
        + "; ".join(
            f"up {r.up_s:.1f} s, re-run {r.rerun_s:.1f} s (changed={r.rerun_changed})" for r in runs
        )
        + ".",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    runs = [one_run() for _ in range(args.runs)]
    text = table(runs)
    publish(SECTION, text, args.write)


if __name__ == "__main__":
    main()
