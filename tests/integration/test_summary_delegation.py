"""The summary asks a service on a remote Incus (or a cluster member) from the machine it runs
on, through the Incus connection, and one on this host's bridge from the controller; a
machine it cannot reach is reported as such and the run still ends well.

Nothing runs here: the controller's checks meet no service, the delegated one meets no
machine, and the summary must say which of the two happened. An Incus-stage test: the
delegated check and the front door's names go through the `incus` client, which the unit
stage does not have (the fresh host's unit stage runs where Incus was never installed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.incus

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
INFRA = """---
global:
  base_subnet: "10.100"
  remote: local
domains:
  sumtest:
    subnet_id: 97
    machines:
      sai:
        ip: 10.100.97.10
        roles: [ollama_server, stt_server]
      sweb:
        ip: 10.100.97.20
        roles: [open_webui]
"""


def test_a_remote_machine_is_asked_over_incus_and_a_local_one_from_the_controller(
    tmp_path: Path,
) -> None:
    (tmp_path / "infra.yml").write_text(INFRA)
    sync = subprocess.run(
        [str(BIN / "aistack"), "sync", "--infra", str(tmp_path / "infra.yml"),
         "--roles-dir", str(REPO / "roles")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert sync.returncode == 0, sync.stdout + sync.stderr
    # The STT and Ollama machine lives on another Incus server (a key below the block wins).
    host_vars = tmp_path / "host_vars" / "sai.yml"
    host_vars.write_text(host_vars.read_text() + "aistack_incus_remote: far-away\n")
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    run = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(tmp_path / "inventory"),
         str(REPO / "playbooks" / "summary.yml")],
        capture_output=True, text=True, env=env, cwd=REPO, check=False, timeout=600,
    )  # fmt: skip
    out = run.stdout
    assert run.returncode == 0, out[-3000:] + run.stderr[-2000:]
    flat = " ".join(out.split())  # the summary's lines as one text, the YAML wrapping undone
    for name, url in (("Speech-to-text", "10.100.97.10:8000/v1"), ("Ollama", "10.100.97.10:11434")):
        assert f"{name} http://{url} NOT ANSWERING (its machine is not reachable over Incus" in (
            flat
        ), flat[-3000:]
    # One request per machine asked from: the remote one's checks all go to sai at once.
    assert "(item=asked from sai)" in out and "localhost -> sai" in out
    # Open WebUI is on this host's bridge: asked by the controller (no service answers there).
    assert "Open WebUI http://10.100.97.20:8080 NOT ANSWERING (" in flat
    assert "localhost -> sweb" not in out
