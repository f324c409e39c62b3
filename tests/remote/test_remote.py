"""A remote Incus server over HTTPS, driven from this controller as a user would.

A second incusd runs in a nested system container (server.py) and trusts nobody. A small
infra.yml names it as `global.remote` with its `remote_url`; the first `make apply`-style
run gets a trust token from the server, so the controller makes its client certificate,
pins the server's certificate, adds itself to the server's trust and writes the remote
into its Incus client. Then the infrastructure modules build the domain on the remote,
the community.general.incus connection provisions the machine through that client, a
second run changes nothing, and destroy leaves the remote as it was.

The controller's Incus client configuration is a scratch directory (INCUS_CONF), so the
test machine's own client never learns the remote. The tests run in file order.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers.checkout import ROOT
from tests.remote import server as remote

pytestmark = pytest.mark.remote

DOMAIN, MACHINE, IP = "r-lab", "r-box", "10.151.1.10"
REMOTE = "r-remote"
# The domain's bridge exists only inside the remote server's network namespace; this
# host never routes to it, the remote's NAT carries the machine's traffic.
INFRA = f"""\
global:
  base_subnet: "10.151"
  default_image: local:aistack/debian-12
  ca_certificates: [/etc/ssl/certs/ca-certificates.crt]
  remote: {REMOTE}
  remote_url: {remote.URL}
  network_acls: false
domains:
  {DOMAIN}:
    subnet_id: 1
    machines:
      {MACHINE}:
        ip: {IP}
front_door:
  enabled: false
"""
# Provisioning over the remote: a file copied in (put_file), a command run (exec_command).
PROVE = f"""\
- name: Prove the connection runs in the remote's machine
  hosts: {MACHINE}
  gather_facts: false
  tasks:
    - name: Copy a marker in
      ansible.builtin.copy:
        content: "provisioned over {{{{ ansible_incus_remote }}}}\\n"
        dest: /root/marker
        mode: "0600"
    - name: Read the machine's address
      ansible.builtin.command: ip -4 -o addr show eth0
      register: addr
      changed_when: false
    - name: Show it
      ansible.builtin.debug:
        msg: "ADDRESS {{{{ addr.stdout.split()[3] }}}}"
"""


class Controller:
    """This host as the controller: a workspace with infra.yml, an Incus client config."""

    def __init__(self, path: Path):
        self.path = path
        self.client_dir = path / "incus-client"
        self.identity = path / "identity"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            PATH=f"{ROOT / '.venv' / 'bin'}:{env['PATH']}",
            ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
            INCUS_CONF=str(self.client_dir),
            ANSIBLE_FORCE_COLOR="0",
        )
        return env

    def sync(self, text: str) -> None:
        (self.path / "infra.yml").write_text(text)
        proc = subprocess.run([str(ROOT / ".venv" / "bin" / "aistack"), "sync", "--infra",
                               str(self.path / "infra.yml")], capture_output=True, text=True,
                              cwd=ROOT, env=self.env())
        assert proc.returncode == 0, proc.stderr

    def play(self, playbook: str | Path, *extra: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i",
               str(self.path / "inventory"), str(playbook),
               "-e", f"aistack_incus_client_dir={self.identity}", *extra]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=self.env(),
                              timeout=900)

    def module(self, args: dict) -> dict:
        """homelab.aistack.incus_remote run once on localhost; its result."""
        env = self.env()
        env.update(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json")
        cmd = [str(ROOT / ".venv" / "bin" / "ansible"), "localhost", "-i", "localhost,",
               "-c", "local", "-e", f"ansible_python_interpreter={ROOT / '.venv/bin/python'}",
               "-m", "homelab.aistack.incus_remote", "-a", json.dumps(args)]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env,
                              timeout=120)
        return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]

    def incus(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["incus", *args], capture_output=True, text=True,
                              env=self.env(), timeout=120)


def _recap(output: str, host: str) -> dict[str, int]:
    line = next(x for x in output.splitlines() if x.startswith(f"{host} ") and "ok=" in x)
    return {k: int(v) for k, v in (p.split("=") for p in line.split(":", 1)[1].split())}


def _outer_projects() -> list[str]:
    out = subprocess.run(["incus", "project", "list", "--format", "csv", "-c", "n"],
                         capture_output=True, text=True, check=True).stdout
    return [line.split(" ")[0] for line in out.splitlines()]


@pytest.fixture(scope="module")
def controller(tmp_path_factory, remote_server) -> Controller:
    ctl = Controller(tmp_path_factory.mktemp("remote-controller"))
    ctl.sync(INFRA)
    return ctl


@pytest.fixture(scope="module")
def applied(controller, remote_server):
    """The first run, with a fresh trust token (as the docs tell a user to pass it)."""
    token = remote.trust_token(remote_server, "aistack-test")
    result = controller.play("playbooks/infra.yml", "-e", f"aistack_incus_remote_token={token}")
    return result, token


def test_a_token_for_another_server_is_refused_and_nothing_is_written(controller,
                                                                      remote_server):
    forged = base64.b64encode(json.dumps({
        "client_name": "aistack", "fingerprint": "00" * 32, "secret": "00",
        "addresses": [f"{remote.SITE.address}:{remote.PORT}"]}).encode()).decode()
    result = controller.module({
        "name": REMOTE, "url": remote.URL, "trust_token": forged,
        "client_cert": str(controller.path / "other.crt"),
        "client_key": str(controller.path / "other.key")})
    assert result.get("failed") is True
    assert f"but the trust token names {'00' * 32}" in result["msg"]
    assert "the address reaches another server" in result["msg"]
    assert not (controller.client_dir / "servercerts").exists()
    assert remote.state(remote_server)["trusted"] == []


def test_a_unix_remote_is_written_for_the_incus_client(controller):
    """remote_url: unix:/path works for provisioning too: the CLI reaches it by name."""
    socket = next(p for p in ("/var/lib/incus/unix.socket", "/run/incus/unix.socket")
                  if Path(p).exists())
    args = {"name": "r-sock", "url": f"unix:{socket}"}
    first, second = controller.module(args), controller.module(args)
    assert first["changed"] is True and second["changed"] is False, (first, second)
    listed = controller.incus("project", "list", "r-sock:", "--format", "csv", "-c", "n")
    assert listed.returncode == 0, listed.stderr
    assert "default" in listed.stdout


def test_an_untrusted_controller_is_refused_before_anything_is_made(controller, remote_server):
    before = remote.state(remote_server)
    result = controller.play("playbooks/infra.yml")
    assert result.returncode != 0
    # No token and no pinned certificate: the self-signed server is not trusted blindly.
    assert "presents a TLS certificate this controller does not trust" in result.stdout
    assert "trust token" in result.stdout
    assert remote.state(remote_server) == before
    assert not (controller.client_dir / "servercerts").exists()
    # The client pair is made anyway: its certificate is what a user trusts by hand.
    assert (controller.identity / "client.crt").exists()
    # make check fails the same way, and writes nothing either.
    checked = controller.play("playbooks/infra.yml", "--check")
    assert checked.returncode != 0
    assert "presents a TLS certificate this controller does not trust" in checked.stdout
    assert not (controller.client_dir / "servercerts").exists()
    # Check mode before any client pair exists: it would have to write one first.
    fresh = controller.path / "never-applied"
    checked = controller.play("playbooks/infra.yml", "--check", "-e",
                              f"aistack_incus_client_dir={fresh}")
    assert "Check mode cannot show remote 'r-remote' yet" in checked.stdout
    assert not fresh.exists()
    assert remote.state(remote_server) == before


def test_the_first_run_builds_the_domain_on_the_remote(controller, remote_server, applied):
    result, token = applied
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    state = remote.state(remote_server)
    assert DOMAIN in state["projects"]
    assert f"br-{DOMAIN}" in state["networks"]
    assert state["instances"] == [f"{DOMAIN}/{MACHINE}"]
    assert "aistack/debian-12" in state["images"]  # copied from this host's Incus
    assert len(state["trusted"]) == 1 and state["trusted"][0] == "aistack-test"
    # Nothing of the domain on this host's own Incus.
    assert DOMAIN not in _outer_projects()
    # The token never shows in the output.
    assert token not in result.stdout + result.stderr


def test_the_client_identity_is_made_once_and_kept_private(controller, applied):
    key = controller.identity / "client.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert (controller.identity / "client.crt").read_text().startswith("-----BEGIN CERTIFICATE")
    assert stat.S_IMODE((controller.client_dir / "clientcerts" / f"{REMOTE}.key")
                        .stat().st_mode) == 0o600
    key_text = key.read_text()
    assert key_text not in applied[0].stdout


def test_the_incus_client_knows_the_remote(controller, applied):
    config = yaml.safe_load((controller.client_dir / "config.yml").read_text())
    assert config["remotes"][REMOTE]["addr"] == remote.URL
    assert config["default-remote"] == "local"
    listed = controller.incus("list", f"{REMOTE}:", "--project", DOMAIN, "--format", "csv",
                              "-c", "ns4")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith(f"{MACHINE},RUNNING,{IP} (eth0)")


def test_provisioning_runs_in_the_remote_machine(controller, remote_server, applied):
    playbook = controller.path / "prove.yml"
    playbook.write_text(PROVE)
    result = controller.play(playbook)
    assert result.returncode == 0, result.stdout[-4000:]
    assert f"ADDRESS {IP}/24" in result.stdout
    # Read on the server itself: the file landed in its machine.
    marker = remote_server.run(f"incus exec --project {DOMAIN} {MACHINE} -- cat /root/marker")
    assert marker.stdout == f"provisioned over {REMOTE}\n"


def test_base_system_provisions_the_remote_machine(controller, remote_server, applied):
    """The project's own role over the remote, as `make apply` runs it after the infra."""
    result = controller.play("playbooks/base.yml", "-e", "base_system_timezone=Europe/Berlin")
    assert result.returncode == 0, result.stdout[-6000:]
    assert _recap(result.stdout, MACHINE)["failed"] == 0
    zone = remote_server.run(f"incus exec --project {DOMAIN} {MACHINE} -- readlink /etc/localtime")
    assert zone.stdout.strip().endswith("Europe/Berlin")


def test_a_second_run_changes_nothing(controller, applied):
    # The token is spent; the pinned certificate and the trust carry the run.
    result = controller.play("playbooks/infra.yml")
    assert result.returncode == 0, result.stdout[-4000:]
    assert _recap(result.stdout, "localhost")["changed"] == 0
    assert _recap(result.stdout, MACHINE)["changed"] == 0
    checked = controller.play("playbooks/infra.yml", "--check", "--diff")
    assert checked.returncode == 0, checked.stdout[-4000:]
    assert _recap(checked.stdout, "localhost")["changed"] == 0


def test_destroy_leaves_nothing_on_the_remote(controller, remote_server, applied):
    result = controller.play("playbooks/destroy.yml")
    assert result.returncode == 0, result.stdout[-4000:]
    state = remote.state(remote_server)
    assert state["projects"] == ["default"]
    assert state["networks"] == []
    assert state["instances"] == []
