#!/usr/bin/env python3
"""Provisioning time of the whole example stack: `make apply` from nothing (the
image already present), then a re-run with nothing changed.

Usage: .venv/bin/python bench/bench_apply.py [--write]

Runs in a scratch copy of the checkout whose infra.yml is the example with the
domain renamed `bench` on subnet 10.100.99.0/24, so it never touches a real
deployment of the example (domain `lab`). Ollama is installed from the test
double's archive, as in the end-to-end test (the real download is unreachable
here). Targets (docs/benchmarks.md): first apply under 10 minutes, re-run
under 90 s with changed=0. `--write` replaces the `## Provisioning` section of
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchdoc import publish  # noqa: E402

from tests.helpers.checkout import make_checkout, ollama_test_double_vars  # noqa: E402

DOMAIN, SUBNET_ID = "bench", 99
SECTION = "## Provisioning"


def _bench_infra(text: str) -> str:
    """The example infra.yml, moved to its own domain and subnet."""
    text = re.sub(r"(?m)^  lab:$", f"  {DOMAIN}:", text)
    text = re.sub(r"(?m)^(\s+subnet_id:) 10$", rf"\1 {SUBNET_ID}", text)
    return text.replace("10.100.10.", f"10.100.{SUBNET_ID}.")


def _fail(step: str, result) -> None:
    sys.exit(
        f"bench_apply: {step} failed (exit {result.returncode}); see {result.target} log:\n"
        + result.output[-3000:]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()

    checkout = make_checkout(ROOT / ".cache" / "bench" / "aistack")
    infra = checkout.path / "infra.yml"
    infra.write_text(_bench_infra(infra.read_text()))
    extra = ollama_test_double_vars(checkout)
    make_args = f"ARGS=-e @{extra}"

    synced = checkout.make("sync", "SYNC_ARGS=--clean-orphans", quiet=True)
    if synced.returncode:
        _fail("make sync", synced)
    checkout.make("destroy", "FORCE=1", quiet=True)  # from nothing, whatever a past run left

    first = checkout.make("apply", make_args, quiet=True)
    if first.returncode:
        _fail("make apply", first)
    second = checkout.make("apply", make_args, quiet=True)
    if second.returncode:
        _fail("second make apply", second)
    gone = checkout.make("destroy", "FORCE=1", quiet=True)
    if gone.returncode:
        _fail("make destroy", gone)

    load = os.getloadavg()[0]
    rows = [
        ("`make apply` from nothing, image present", first.seconds, 600, first.changed()),
        ("`make apply` again, nothing changed", second.seconds, 90, second.changed()),
    ]
    table = [
        "| run | seconds | target | changed tasks |",
        "|---|---|---|---|",
        *[f"| {name} | {secs:.0f} | < {lim} | {n} |" for name, secs, lim, n in rows],
    ]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join(
        [
            SECTION,
            "",
            f"`bench/bench_apply.py`, {when}, {platform.node()}: {os.cpu_count()} cores, "
            f"load average {load:.1f} at the end of the run. The example stack (two "
            "containers: Ollama from the test double's archive and aistack-stt on `ai`, Open "
            "WebUI on `web`), local Debian 12 "
            "image already imported. Single runs: the first apply downloads Open WebUI and its "
            "dependencies from PyPI inside the container, which dominates it.",
            "",
            *table,
            "",
        ]
    )
    publish(SECTION, body, args.write)
    ok = first.seconds < 600 and second.seconds < 90 and second.changed() == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
