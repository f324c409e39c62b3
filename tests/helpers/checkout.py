"""A scratch copy of this checkout in which `make` runs as a user would run it.

The end-to-end test and the provisioning benchmark both edit host_vars/ and
run `make apply`; doing that in a copy keeps the real checkout untouched while
the controller venv and the downloaded test weights are shared.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

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
    seconds: float

    def recap(self) -> dict[str, dict[str, int]]:
        """Per-host totals of every PLAY RECAP in the output, summed."""
        totals: dict[str, dict[str, int]] = {}
        for m in RECAP.finditer(self.output):
            keys = ("ok", "changed", "failed", "unreachable")
            host = totals.setdefault(m["host"], dict.fromkeys(keys, 0))
            for key in keys:
                host[key] += int(m[key])
        return totals

    def changed(self) -> int:
        return sum(totals["changed"] for totals in self.recap().values())


@dataclass
class Checkout:
    path: Path

    def make(
        self, *args: str, timeout: int = 3600, quiet: bool = False, env: dict | None = None
    ) -> MakeResult:
        """Run make in the copy; the whole output also lands in make-<target>.log there.
        `env`: variables added to this process's environment for the run."""
        log = self.path / f"make-{'-'.join(a.split('=')[0] for a in args)}.log"
        started = time.monotonic()
        with log.open("w") as fh:
            proc = subprocess.run(
                # -o: the venv is the checkout's, shared; never rebuild it from the copy
                # (an editable install made here would point the real venv at the copy).
                ["make", "--no-print-directory", "-o", ".venv/bin/aistack", *args],
                cwd=self.path,
                stdout=fh,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                env={
                    **os.environ,
                    "ANSIBLE_FORCE_COLOR": "0",
                    "ANSIBLE_NOCOLOR": "1",
                    **(env or {}),
                },
            )
        seconds = time.monotonic() - started
        output = log.read_text()
        if not quiet:
            print(output[-4000:])
            print(f"make {' '.join(args)}: exit {proc.returncode} after {seconds:.0f} s")
        return MakeResult(" ".join(args), proc.returncode, output, seconds)


def working_files() -> list[str]:
    """This checkout's tracked and untracked-but-not-ignored files, relative to ROOT."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [rel for rel in listed.split("\0") if rel]


def make_checkout(dest: Path) -> Checkout:
    """Copy the tracked and untracked-but-not-ignored files of this checkout to dest."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    archive = dest.parent / f"{dest.name}.tar"
    with tarfile.open(archive, "w") as tar:
        for rel in working_files():
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
    return Checkout(dest)


def ollama_test_double_vars(checkout: Checkout) -> Path:
    """Build the Ollama test double's archive; return an extra-vars file that installs it.

    Ollama cannot be downloaded on the machines this project is tested on, so tests give
    the role a local archive, the way a user on an offline host would.
    """
    built = subprocess.run(
        [
            str(ROOT / ".venv/bin/python"),
            str(ROOT / "tests/fixtures/ollama-test-double/build-archive"),
            "--output-dir",
            str(checkout.path / ".e2e"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    archive = json.loads(built.stdout)
    extra = checkout.path / ".e2e" / "ollama-test-double.yml"
    extra.write_text(
        f"ollama_server_archive_path: {archive['path']}\n"
        f"ollama_server_archive_sha256: {archive['sha256']}\n"
        f"ollama_server_version: {archive['version']}\n"
    )
    return extra
