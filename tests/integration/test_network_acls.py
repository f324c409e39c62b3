"""The network ACLs `aistack sync` derives from the wiring, applied by
playbooks/infra.yml on real Incus: a machine wired to Ollama and the STT
service reaches them, a machine that is not wired does not (in its own domain
or another), `allow:` opens a port to a named machine, the host keeps access,
a re-run changes nothing and destroy removes the ACLs.

Stand-in servers (``python3 -m http.server``) listen on the service ports: the
point is the path through the firewall, not the service."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
from incus_harness import ROOT, VENV_BIN, incus_exec, playbook, query, recap

pytestmark = pytest.mark.incus

A, B = "s-acla", "s-aclb"
PROVIDER = ("s-acl-prov", "10.170.41.10")
WEB = ("s-acl-web", "10.170.41.20")
STRAY = ("s-acl-stray", "10.170.41.30")
FAR = ("s-acl-far", "10.170.42.10")
NEAR = ("s-acl-near", "10.170.42.20")
OLLAMA, STT = 11434, 8000

INFRA = textwrap.dedent(
    f"""\
    global:
      base_subnet: "10.170"
      default_image: local:aistack/debian-12
    domains:
      {A}:
        subnet_id: 41
        ephemeral: true
        machines:
          {PROVIDER[0]}:
            ip: {PROVIDER[1]}
            roles: [ollama_server, stt_server]
            allow:
              ollama_server: [{NEAR[0]}]
          {WEB[0]}:
            ip: {WEB[1]}
            roles: [open_webui]
          {STRAY[0]}:
            ip: {STRAY[1]}
      {B}:
        subnet_id: 42
        ephemeral: true
        machines:
          {FAR[0]}:
            ip: {FAR[1]}
          {NEAR[0]}:
            ip: {NEAR[1]}
    # The ACLs are the point here; the HTTPS front door would take the host's port 443,
    # which the end-to-end stack running beside this test holds.
    front_door:
      enabled: false
    """
)


def _sync(root: Path) -> Path:
    (root / "infra.yml").write_text(INFRA)
    subprocess.run(
        [str(VENV_BIN / "aistack"), "sync", "--infra", str(root / "infra.yml"),
         "--roles-dir", str(ROOT / "roles")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return root / "inventory"


def _connects(machine: tuple[str, str], address: str, port: int) -> bool:
    project = A if machine[1].startswith("10.170.41.") else B
    probe = (
        "import socket; s = socket.socket(); s.settimeout(3); "
        f"s.connect(('{address}', {port})); print('open')"
    )
    result = incus_exec(project, machine[0], f'python3 -c "{probe}"')
    return result.stdout.strip() == "open"


def _host_connects(address: str, port: int) -> bool:
    import socket

    try:
        with socket.create_connection((address, port), timeout=3):
            return True
    except OSError:
        return False


def _acls() -> set[str]:
    return {path.rsplit("/", 1)[-1] for path in query("/1.0/network-acls") or []}


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    inventory = _sync(tmp_path_factory.mktemp("acl"))
    playbook("playbooks/destroy.yml", inventory)
    first = playbook("playbooks/infra.yml", inventory)
    try:
        assert first.returncode == 0, first.stdout + first.stderr
        for port in (OLLAMA, STT):
            started = incus_exec(
                A,
                PROVIDER[0],
                f"nohup python3 -m http.server {port} --bind 0.0.0.0 >/dev/null 2>&1 & "
                f'for i in $(seq 50); do python3 -c "import socket; '
                f"socket.create_connection(('127.0.0.1', {port}))\" 2>/dev/null && exit 0; "
                "sleep 0.2; done; exit 1",
            )
            assert started.returncode == 0, started.stderr
        yield inventory
    finally:
        gone = playbook("playbooks/destroy.yml", inventory)
        assert gone.returncode == 0, gone.stdout + gone.stderr


def test_the_wired_machine_reaches_ollama_and_stt(stack):
    assert _connects(WEB, PROVIDER[1], OLLAMA)
    assert _connects(WEB, PROVIDER[1], STT)


def test_an_unwired_machine_of_the_same_domain_cannot_reach_them(stack):
    assert not _connects(STRAY, PROVIDER[1], OLLAMA)
    assert not _connects(STRAY, PROVIDER[1], STT)


def test_an_unwired_machine_of_another_domain_cannot_reach_them(stack):
    assert not _connects(FAR, PROVIDER[1], OLLAMA)
    assert not _connects(FAR, PROVIDER[1], STT)


def test_allow_opens_only_the_named_port_to_the_named_machine(stack):
    assert _connects(NEAR, PROVIDER[1], OLLAMA)
    assert not _connects(NEAR, PROVIDER[1], STT)


def test_the_host_still_reaches_the_services(stack):
    assert _host_connects(PROVIDER[1], OLLAMA)
    assert _host_connects(PROVIDER[1], STT)


def test_a_rerun_changes_nothing_and_check_mode_shows_the_acls(stack):
    again = playbook("playbooks/infra.yml", stack)
    assert again.returncode == 0, again.stdout + again.stderr
    assert recap(again.stdout)["localhost"]["changed"] == 0
    checked = playbook("playbooks/infra.yml", stack, check=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"aistack-{A}" in checked.stdout and f"aistack-{B}" in checked.stdout
    assert {f"aistack-{A}", f"aistack-{B}"} <= _acls()


def test_destroy_removes_the_acls(stack):
    gone = playbook("playbooks/destroy.yml", stack)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert not {f"aistack-{A}", f"aistack-{B}"} & _acls()
    assert query(f"/1.0/projects/{A}") is None
