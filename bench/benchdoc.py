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

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "benchmarks.md"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.helpers.stt_server import free_port, start_process  # noqa: E402

__all__ = ["ROOT", "free_port", "publish", "start_process", "write_section"]


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


def publish(section: str, text: str, write: bool) -> None:
    """Print a benchmark's result; with `write` (its --write flag) also put it in
    docs/benchmarks.md as `section`."""
    print(text)
    if write:
        write_section(section, text)
