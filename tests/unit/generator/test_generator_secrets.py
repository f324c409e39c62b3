"""Secrets stay secret: the STT key is made once on the controller, 0600 and
outside the tracked tree; !vault values pass through to host_vars and Ansible
decrypts them there; host_vars are readable by their owner alone."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from generator_support import EXAMPLE, REPO, Workspace

BIN = Path(sys.executable).parent
PASSWORD = "correct horse battery staple"
SECRET = "s3cret value: with 'quotes' and a # hash"


def _ansible_var(ws: Workspace, host: str, expression: str, *extra: str) -> str:
    """Evaluate an expression in ``host``'s variables the way a play would."""
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json")
    run = subprocess.run(
        [str(BIN / "ansible"), host, "-i", str(ws.root / "inventory"),
         # The generated host_vars set ansible_connection (homelab.aistack.incus, which
         # needs the incus binary) and beat `-c local`; extra vars beat host_vars.
         "-e", "ansible_connection=local",
         "-e", f"ansible_python_interpreter={sys.executable}", "-m", "ansible.builtin.debug",
         "-a", f"msg={{{{ {expression} }}}}", *extra],
        capture_output=True, text=True, env=env, cwd=ws.root, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    return json.loads(run.stdout)["plays"][0]["tasks"][0]["hosts"][host]["msg"]


def test_stt_key_is_made_once_0600_and_shared_with_open_webui(ws: Workspace) -> None:
    assert ws.sync().code == 0
    text = ws.read("host_vars/ai.yml")
    key_file = ws.root / ".aistack" / "secrets" / "stt_api_key-ai"
    assert not key_file.exists()  # sync writes no secret, only where it will live
    first = _ansible_var(ws, "web", "hostvars['ai'].stt_server_api_key")
    assert len(first) == 40 and first.isalnum()
    assert first not in text
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().split()[0] == first
    assert _ansible_var(ws, "ai", "stt_server_api_key") == first  # the same key every run


def test_a_key_the_user_sets_wins(ws: Workspace) -> None:
    ws.write(EXAMPLE.replace("limits.cpu: \"2\"", "limits.cpu: \"2\"\n        vars:\n"
                             "          stt_server_api_key: mine"))
    assert ws.sync().code == 0
    assert yaml.safe_load(ws.read("host_vars/ai.yml"))["stt_server_api_key"] == "mine"


def test_the_secrets_directory_is_ignored_by_git(tmp_path: Path) -> None:
    # The checkout's .gitignore in a repository of its own: the sources may come without
    # .git (`git archive`, as the fresh-host test copies them), and git (which .ci/run
    # installs) answers check-ignore only inside a repository.
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text((REPO / ".gitignore").read_text())
    probe = tmp_path / ".aistack" / "secrets" / "stt_api_key-ai"
    run = subprocess.run(["git", "-c", "core.excludesFile=/dev/null", "check-ignore", "-q",
                          str(probe)], cwd=tmp_path, check=False)
    assert run.returncode == 0, ".aistack/ must be in .gitignore"


@pytest.fixture
def vaulted(tmp_path: Path) -> tuple[str, Path]:
    password = tmp_path / "vault-password"
    password.write_text(PASSWORD)
    run = subprocess.run(
        [str(BIN / "ansible-vault"), "encrypt_string", "--vault-password-file", str(password),
         SECRET, "--name", "open_webui_admin_password"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return run.stdout, password


def test_vault_values_pass_through_and_ansible_decrypts_them(ws: Workspace, vaulted) -> None:
    block, password = vaulted
    indented = "".join(f"          {line}\n" for line in block.splitlines())
    ws.write(EXAMPLE.replace("roles: [open_webui]\n", "roles: [open_webui]\n        vars:\n"
                             + indented))
    result = ws.sync()
    assert result.code == 0, result.err
    text = ws.read("host_vars/web.yml")
    assert "!vault |" in text and "$ANSIBLE_VAULT;1.1;AES256" in text
    assert SECRET not in text
    got = _ansible_var(ws, "web", "open_webui_admin_password", "--vault-password-file",
                       str(password))
    assert got == SECRET
    # A second sync reads its own output back and changes nothing.
    assert ws.sync().out.count("update") == 0


def test_host_vars_are_written_0600(ws: Workspace) -> None:
    assert ws.sync().code == 0
    for name in ("ai", "web"):
        mode = stat.S_IMODE((ws.root / "host_vars" / f"{name}.yml").stat().st_mode)
        assert mode == 0o600, f"host_vars/{name}.yml is {oct(mode)}"
    (ws.root / "host_vars" / "ai.yml").chmod(0o644)
    ws.write(EXAMPLE.replace('limits.cpu: "2"', 'limits.cpu: "4"'))
    assert ws.sync().code == 0
    assert stat.S_IMODE((ws.root / "host_vars" / "ai.yml").stat().st_mode) == 0o600


def test_vault_outside_vars_is_refused_by_name(ws: Workspace, vaulted) -> None:
    block, _ = vaulted
    value = block.split(":", 1)[1]
    indented = value.replace("\n", "\n  ")
    ws.write(EXAMPLE.replace("  storage_pool: default\n", f"  storage_pool:{indented}\n"))
    result = ws.run("validate", str(ws.infra))
    assert result.code == 2
    assert "global.storage_pool" in result.err and "!vault" in result.err
