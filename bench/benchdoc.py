"""What the benchmarks share: a free loopback port and writing their section of the results.

Each benchmark owns one `## ` section of docs/benchmarks.md; `write_section` replaces that
section (up to the next `## ` heading) or appends it, and leaves the other sections as
they are.
"""

from __future__ import annotations

import socket
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "benchmarks.md"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
