"""Fixtures for the end-to-end run: a scratch copy of the checkout in which
`make apply` runs on the example infra.yml, exactly as a user would run it.

The copy keeps the test from editing the real host_vars/ (the model switch
writes there) while the venv and the downloaded test weights are shared.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECAP = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)",
    re.MULTILINE,
)


@dataclass
class MakeResult:
    target: str
    returncode: int
    output: str

    def recap(self) -> dict[str, dict[str, int]]:
        """Per-host totals of every PLAY RECAP in the output, summed."""
        totals: dict[str, dict[str, int]] = {}
        for m in RECAP.finditer(self.output):
            keys = ("ok", "changed", "failed", "unreachable")
            host = totals.setdefault(m["host"], dict.fromkeys(keys, 0))
            for key in keys:
                host[key] += int(m[key])
        return totals


@dataclass
class Checkout:
    path: Path

    def make(self, *args: str, timeout: int = 3600) -> MakeResult:
        """Run make in the copy, streaming its output to the log so progress shows."""
        log = self.path / f"make-{'-'.join(a.split('=')[0] for a in args)}.log"
        with log.open("w") as fh:
            proc = subprocess.run(
                # -o: the venv is the checkout's, shared; never rebuild it from the copy
                # (an editable install made here would point the real venv at the copy).
                ["make", "--no-print-directory", "-o", ".venv/bin/aistack", *args],
                cwd=self.path,
                stdout=fh,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                env={**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1"},
            )
        output = log.read_text()
        print(output[-4000:])
        return MakeResult(" ".join(args), proc.returncode, output)

    def incus(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["incus", *args], capture_output=True, text=True, check=check)


def _copy_checkout(dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    archive = dest.parent / "checkout.tar"
    with tarfile.open(archive, "w") as tar:
        for rel in filter(None, files):
            src = ROOT / rel
            if src.exists():
                tar.add(src, arcname=rel, recursive=False)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="tar")
    archive.unlink()
    # Shared, not copied: the controller venv and the test weights. The copy is
    # its own homelab.aistack collection, laid out as scripts/setup-venv does it.
    (dest / ".venv").symlink_to(ROOT / ".venv")
    collection = dest / ".cache/collections/ansible_collections/homelab/aistack"
    collection.parent.mkdir(parents=True)
    collection.symlink_to(dest)
    (dest / ".cache/models").symlink_to(ROOT / ".cache/models")


@pytest.fixture(scope="session")
def checkout() -> Checkout:
    """A fresh copy under .cache/e2e; kept after the run so its make-*.log files can be read."""
    dest = ROOT / ".cache" / "e2e" / "aistack"
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    _copy_checkout(dest)
    return Checkout(dest)
