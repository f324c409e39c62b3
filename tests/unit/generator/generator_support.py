"""Helpers for the generator tests: a fixed role set, infra files, a CLI runner.

A module with its own name rather than conftest.py, so that importing it can
never pick up another directory's conftest.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from aistack import cli

REPO = Path(__file__).resolve().parents[3]
ROLES = ("base_system", "ollama_server", "stt_server", "open_webui", "incus_host")

EXAMPLE = """\
global:
  base_subnet: "10.100"
  gpu_policy: exclusive
  default_image: images:debian/12
  ca_certificates: []
  remote: local
  storage_pool: default
domains:
  lab:
    description: Private AI stack
    subnet_id: 10
    machines:
      ai:
        description: Ollama and STT
        type: lxc
        ip: 10.100.10.10
        roles: [ollama_server, stt_server]
        config:
          limits.cpu: "2"
      web:
        description: Open WebUI
        ip: 10.100.10.20
        roles: [open_webui]
"""


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Workspace:
    """A directory with roles/ and an infra.yml, as a user's checkout would have."""

    root: Path
    capsys: pytest.CaptureFixture[str]

    @property
    def infra(self) -> Path:
        return self.root / "infra.yml"

    def write(self, text: str, name: str = "infra.yml") -> Path:
        path = self.root / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def run(self, *argv: str) -> Result:
        self.capsys.readouterr()
        code = cli.main(list(argv))
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def sync(self, *extra: str) -> Result:
        return self.run("sync", "--infra", str(self.infra), *extra)

    def refused(self, text: str) -> list[str]:
        """`sync` of infra.yml `text` must fail: exit 2, no traceback, no host_vars written;
        its error lines (the closing summary line left out)."""
        self.write(text)
        result = self.sync()
        assert result.code == 2, result
        assert "Traceback" not in result.err
        assert not (self.root / "host_vars").exists(), "an invalid infra.yml still wrote files"
        return result.err.strip().splitlines()[:-1]

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text(encoding="utf-8")

    def snapshot(self) -> dict[str, tuple[bytes, int]]:
        """Every file under the output directories with its content and mtime."""
        files = {}
        for folder in ("inventory", "group_vars", "host_vars"):
            base = self.root / folder
            if base.is_dir():
                for path in sorted(base.rglob("*")):
                    if path.is_file() and not path.is_symlink():
                        stat = path.stat()
                        files[str(path.relative_to(self.root))] = (path.read_bytes(),
                                                                   stat.st_mtime_ns)
        return files


@pytest.fixture
def ws(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Workspace:
    for role in ROLES:
        (tmp_path / "roles" / role / "tasks").mkdir(parents=True)
    workspace = Workspace(tmp_path, capsys)
    workspace.write(EXAMPLE)
    return workspace
