"""The open_webui role refuses to install a release older than the one in place (Open WebUI
migrates its database forward only), unless open_webui_allow_downgrade says so.

The role's check runs here as Ansible runs it, against a virtual environment whose Python
reports the installed release (a script standing in for the venv's interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _run(tmp_path: Path, installed: str | None, **extra) -> subprocess.CompletedProcess:
    install_dir = tmp_path / "opt"
    if installed is not None:
        python = install_dir / "venv" / "bin" / "python"
        python.parent.mkdir(parents=True)
        python.write_text(f"#!/bin/sh\necho {installed}\n")
        python.chmod(0o755)
    play = [{
        "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": {"ansible_python_interpreter": sys.executable,
                 "open_webui_install_dir": str(install_dir), **extra},
        "tasks": [{"ansible.builtin.include_role": {
            "name": str(REPO / "roles" / "open_webui"), "tasks_from": "downgrade.yml"}}],
    }]  # fmt: skip
    (tmp_path / "play.yml").write_text(json.dumps(play))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(tmp_path / "play.yml")],
        capture_output=True, text=True, env=env, cwd=REPO, check=False,
    )  # fmt: skip


def test_an_older_release_than_the_installed_one_is_refused(tmp_path: Path) -> None:
    run = _run(tmp_path, "0.12.10", open_webui_version="0.12.4")
    assert run.returncode != 0
    out = " ".join(run.stdout.split())
    assert "Open WebUI 0.12.10 is installed on localhost and has migrated its database" in out
    assert "open_webui_allow_downgrade: true" in out


@pytest.mark.parametrize(
    ("installed", "extra"),
    [
        ("0.12.3", {}),  # an upgrade
        ("0.12.4", {}),  # the same release
        (None, {}),  # a first install
        ("0.12.10", {"open_webui_allow_downgrade": True}),  # asked for
    ],
)
def test_upgrades_first_installs_and_asked_for_downgrades_go_on(
    tmp_path: Path, installed: str | None, extra: dict
) -> None:
    run = _run(tmp_path, installed, open_webui_version="0.12.4", **extra)
    assert run.returncode == 0, run.stdout + run.stderr
