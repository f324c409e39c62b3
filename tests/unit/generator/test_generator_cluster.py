"""infra.yml with an Incus cluster: the members, where each machine runs, and the wiring
between machines on different members (tests/cluster runs it on a real two-member
cluster)."""

from __future__ import annotations

import pytest
import yaml
from generator_support import EXAMPLE, Workspace

from aistack import cluster

CLUSTER = """\
cluster:
  members:
    gpu-box:
      address: 192.168.1.10
    nuc:
      address: 192.168.1.11
"""
# The example with a cluster: Ollama and STT on the GPU box, Open WebUI on the NUC.
PLACED = (
    EXAMPLE.replace("        roles: [ollama_server, stt_server]\n",
                    "        roles: [ollama_server, stt_server]\n        target: gpu-box\n")
    .replace("        roles: [open_webui]\n", "        roles: [open_webui]\n        target: nuc\n")
    + CLUSTER
)


def errors(ws: Workspace, text: str) -> list[str]:
    ws.write(text)
    result = ws.sync()
    assert result.code == 2, result.out
    assert not (ws.root / "group_vars").exists(), "an invalid infra.yml must write nothing"
    return result.err.splitlines()


def the_error(ws: Workspace, text: str, path: str) -> str:
    found = [line for line in errors(ws, text) if f": {path}: " in line]
    assert found, f"no error names {path}"
    return found[0]


def host_vars(ws: Workspace, machine: str) -> dict:
    return yaml.safe_load(ws.read(f"host_vars/{machine}.yml"))


def test_a_consumer_on_another_member_is_wired_to_the_providers_member_address(
    ws: Workspace,
) -> None:
    ws.write(PLACED)
    assert ws.sync().code == 0
    web = host_vars(ws, "web")
    assert web["open_webui_stt_base_url"] == "http://192.168.1.10:8000/v1"
    assert web["open_webui_ollama_base_url"] == "http://192.168.1.10:11434"
    assert web["aistack_instance"]["target"] == "nuc"


def test_the_provider_publishes_each_consumed_port_on_its_member_address(ws: Workspace) -> None:
    ws.write(PLACED)
    assert ws.sync().code == 0
    ai = host_vars(ws, "ai")
    devices = ai["aistack_instance"]["devices"]
    assert ai["aistack_instance"]["target"] == "gpu-box"
    assert devices["aistack-publish-stt-server"] == {
        "type": "proxy",
        "listen": "tcp:192.168.1.10:8000",
        "connect": "tcp:10.100.10.10:8000",
        "bind": "host",
    }
    assert devices["aistack-publish-ollama-server"]["listen"] == "tcp:192.168.1.10:11434"
    # The STT API stays closed by its key, whoever reaches the published port.
    assert "stt_server_api_key" in ai


def test_a_port_variable_moves_the_published_port_and_the_url(ws: Workspace) -> None:
    ws.write(PLACED.replace("          limits.cpu: \"2\"\n",
                            "          limits.cpu: \"2\"\n        vars:\n"
                            "          stt_server_port: 8100\n"))
    assert ws.sync().code == 0
    assert host_vars(ws, "web")["open_webui_stt_base_url"] == "http://192.168.1.10:8100/v1"
    device = host_vars(ws, "ai")["aistack_instance"]["devices"]["aistack-publish-stt-server"]
    assert device["listen"] == "tcp:192.168.1.10:8100"
    assert device["connect"] == "tcp:10.100.10.10:8100"


def test_machines_on_the_same_member_keep_their_bridge_addresses(ws: Workspace) -> None:
    ws.write(PLACED.replace("        target: nuc\n", "        target: gpu-box\n"))
    assert ws.sync().code == 0
    assert host_vars(ws, "web")["open_webui_stt_base_url"] == "http://10.100.10.10:8000/v1"
    devices = host_vars(ws, "ai")["aistack_instance"]["devices"]
    assert not any(name.startswith(cluster.PUBLISH_PREFIX) for name in devices)


def test_sync_adds_the_members_to_the_inventory_first_member_local(ws: Workspace) -> None:
    ws.write(PLACED.replace("      address: 192.168.1.11\n",
                            "      address: 192.168.1.11\n      ssh_user: admin\n"))
    assert ws.sync().code == 0
    hosts = yaml.safe_load(ws.read("inventory/incus_cluster.yml"))["incus_cluster"]["hosts"]
    assert list(hosts) == ["gpu-box", "nuc"]
    assert hosts["gpu-box"]["ansible_connection"] == "local"
    assert hosts["nuc"]["ansible_connection"] == "ssh"
    assert hosts["nuc"]["ansible_host"] == "192.168.1.11"
    assert hosts["nuc"]["ansible_user"] == "admin"
    members = yaml.safe_load(ws.read("group_vars/all.yml"))["aistack_cluster"]["members"]
    assert [(m["name"], m["address"]) for m in members] == [
        ("gpu-box", "192.168.1.10"),
        ("nuc", "192.168.1.11"),
    ]


def test_one_host_files_carry_no_cluster_keys(ws: Workspace) -> None:
    assert ws.sync().code == 0
    assert "aistack_cluster" not in yaml.safe_load(ws.read("group_vars/all.yml"))
    assert "target" not in host_vars(ws, "ai")["aistack_instance"]
    assert not (ws.root / "inventory" / "incus_cluster.yml").exists()


def test_removing_the_cluster_reports_its_inventory_as_an_orphan(ws: Workspace) -> None:
    ws.write(PLACED)
    assert ws.sync().code == 0
    ws.write(EXAMPLE)
    result = ws.sync("--clean-orphans")
    assert result.code == 0, result.err
    assert not (ws.root / "inventory" / "incus_cluster.yml").exists()


@pytest.mark.parametrize(
    ("old", "new", "path", "words"),
    [
        ("        target: nuc\n", "        target: nux\n", "domains.lab.machines.web.target",
         "did you mean 'nuc'?"),
        ("        target: nuc\n", "", "domains.lab.machines.web",
         "add target: <one of gpu-box, nuc>"),
        ("      address: 192.168.1.11\n", "      address: 10.100.3.3\n",
         "cluster.members.nuc.address", "inside the stack's own range 10.100.0.0/16"),
        ("      address: 192.168.1.11\n", "      address: 192.168.1.10\n",
         "cluster.members.nuc.address", "already the address of member gpu-box"),
        ("      address: 192.168.1.11\n", "      address: nuc.lan\n",
         "cluster.members.nuc.address", "not an IPv4 address"),
        ("    nuc:\n", "    web:\n", "cluster.members.web", "domain, machine or Ansible group"),
        ("      address: 192.168.1.11\n", "      address: 192.168.1.11\n      connection: local\n",
         "cluster.members", "only the machine that runs aistack is local"),
        ("      address: 192.168.1.11\n", "      address: 192.168.1.11\n      connection: winrm\n",
         "cluster.members.nuc.connection", "not one of: local, ssh"),
        ("      address: 192.168.1.11\n", "      address: 192.168.1.11\n      port: 22\n",
         "cluster.members.nuc.port", "unknown key 'port'"),
        ("      address: 192.168.1.10\n", "      address: 192.168.1.10\n      connection: ssh\n",
         "cluster.members", "no member says connection: local"),
    ],
    ids=["unknown member", "missing target", "member in the stack's range", "same address twice",
         "address not IPv4", "member named like a machine", "two local members",
         "unknown connection", "unknown member key", "no local member"],
)
def test_validate_rejects_a_bad_cluster_naming_its_key_path(
    ws: Workspace, old: str, new: str, path: str, words: str
) -> None:
    assert old in PLACED
    assert words in the_error(ws, PLACED.replace(old, new, 1), path)


def test_cluster_without_members_is_rejected(ws: Workspace) -> None:
    text = PLACED.replace(CLUSTER, "cluster:\n  members: {}\n")
    assert "must name at least one member" in the_error(ws, text, "cluster.members")


def test_a_target_without_a_cluster_section_is_checked_against_the_live_server(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = EXAMPLE.replace("        roles: [open_webui]\n",
                           "        roles: [open_webui]\n        target: nuc\n")
    monkeypatch.setattr(cluster, "live_members", lambda: ["gpu-box", "nux"])
    assert "did you mean 'nux'?" in the_error(ws, text, "domains.lab.machines.web.target")
    monkeypatch.setattr(cluster, "live_members", lambda: [])
    assert "is not a cluster" in the_error(ws, text, "domains.lab.machines.web.target")
    # Incus not reachable from here: validation does not depend on it.
    monkeypatch.setattr(cluster, "live_members", lambda: None)
    ws.write(text)
    assert ws.sync().code == 0
    assert host_vars(ws, "web")["aistack_instance"]["target"] == "nuc"
