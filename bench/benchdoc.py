"""What the benchmarks share: the repository's server harness and writing their section of
the results.

Importing this module puts the repository root on sys.path, so that a benchmark run as
`python bench/NAME.py` starts aistack-stt through the harness the tests use
(tests/helpers/stt_server.py: one way to start it, one readiness rule).

Each benchmark owns one `## ` section of docs/benchmarks.md; `write_section` replaces that
section (up to the next `## ` heading) or appends it, and leaves the other sections as
they are.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "benchmarks.md"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.helpers.stt_server import free_port, start_process  # noqa: E402

__all__ = [
    "ROOT",
    "ensure_test_models",
    "free_port",
    "publish",
    "servers",
    "stop_all",
    "start_process",
    "stt_parser",
    "write_section",
]


def write_section(section: str, text: str, doc: Path = RESULTS) -> None:
    """Replace `section` (a `## ` heading line, up to the next one) with `text`, or append it.

    `text` starts with the heading itself.
    """
    current = doc.read_text() if doc.exists() else "# Benchmarks\n"
    lines = current.splitlines(keepends=True)
    start = next((i for i, ln in enumerate(lines) if ln.rstrip() == section), None)
    body = text.rstrip("\n") + "\n"
    if start is None:
        new = current.rstrip("\n") + "\n\n" + body
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        tail = "".join(lines[end:])
        new = "".join(lines[:start]) + body + ("\n" + tail if tail else "")
    doc.write_text(new)


def publish(section: str, text: str, write: bool) -> int:
    """Print a benchmark's result; with `write` (its --write flag) also put it in
    docs/benchmarks.md as `section`. Returns 0, the benchmark's exit status."""
    print(text)
    if write:
        write_section(section, text)
    return 0


def stt_parser(doc: str, runs: int) -> argparse.ArgumentParser:
    """The command line of an aistack-stt benchmark (described by `doc`'s first line) with the
    options they share: --runs (default `runs`), --model-dir, --threads and --write."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--model-dir", type=Path, default=ROOT / ".cache" / "models")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    return parser


def ensure_test_models(model_dir: Path) -> None:
    """Fetch the test models into `model_dir` (scripts/fetch-test-models) unless tiny.en is
    there."""
    if not (model_dir / "tiny.en" / "model.bin").is_file():
        subprocess.run([str(ROOT / "scripts" / "fetch-test-models"), str(model_dir)], check=True)


def stop_all(procs: list[subprocess.Popen]) -> None:
    """Stop the servers a benchmark started (SIGTERM, then wait up to 30 s for each)."""
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def servers() -> Iterator[list[subprocess.Popen]]:
    """A list for the servers a benchmark starts; all are stopped on the way out, however."""
    procs: list[subprocess.Popen] = []
    try:
        yield procs
    finally:
        stop_all(procs)
