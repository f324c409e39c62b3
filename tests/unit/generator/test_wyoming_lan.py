"""wyoming_lan: one switch on the STT machine publishes Wyoming on the host's LAN address
(a NAT-mode proxy device), opens the bridge's ACL and the server's allow-list to the networks
it names, and has the host announce it over mDNS; every wrong value is reported at its line
and nothing is written."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
import yaml
from generator_support import EXAMPLE, Workspace

from aistack import wyoming_lan

LAN_ADDRESS = "192.168.1.10"


@pytest.fixture(autouse=True)
def lan_host(monkeypatch: pytest.MonkeyPatch) -> None:
    """This host has LAN_ADDRESS, and nothing listens on the ports the tests publish."""
    monkeypatch.setattr(wyoming_lan, "host_has_address", lambda a: a == IPv4Address(LAN_ADDRESS))
    monkeypatch.setattr(wyoming_lan, "port_holder", lambda port: None)


def with_lan(body: str, machine: str = "ai", tail: str = "") -> str:
    lines = "".join(f"          {line}\n" for line in body.strip("\n").splitlines())
    marker = (
        "        roles: [ollama_server, stt_server]\n"
        if machine == "ai"
        else ("        roles: [open_webui]\n")
    )
    return EXAMPLE.replace(marker, marker + "        wyoming_lan:\n" + lines) + tail


def errors(ws: Workspace, text: str) -> list[str]:
    return ws.refused(text)


def test_published_port_is_a_nat_proxy_with_acl_allow_list_and_announcement(
    ws: Workspace,
) -> None:
    ws.write(with_lan(f"listen: {LAN_ADDRESS}\nallow: [192.168.1.0/24, 10.9.8.7]"))
    assert ws.sync().code == 0, ws.sync()
    ai = yaml.safe_load(ws.read("host_vars/ai.yml"))
    assert ai["aistack_instance"]["devices"]["aistack-wyoming"] == {
        "type": "proxy",
        "listen": f"tcp:{LAN_ADDRESS}:10300",
        "connect": "tcp:10.100.10.10:10300",
        "nat": "true",
    }
    assert ai["stt_server_wyoming_allow"] == [
        "127.0.0.0/8",
        "10.100.10.0/24",
        "192.168.1.0/24",
        "10.9.8.7/32",
    ]
    assert ai["aistack_wyoming_lan"] == {
        "address": LAN_ADDRESS,
        "port": 10300,
        "allow": ["192.168.1.0/24", "10.9.8.7/32"],
        "zeroconf": True,
    }
    everything = yaml.safe_load(ws.read("group_vars/all.yml"))
    assert everything["aistack_mdns_services"] == [
        {"name": "aistack-stt", "type": "_wyoming._tcp", "port": 10300}
    ]
    ingress = everything["aistack_domains"]["lab"]["network_acl"]["ingress"]
    wyoming = [r for r in ingress if r.get("destination_port") == "10300"]
    assert len(wyoming) == 1
    assert wyoming[0]["source"] == ["10.100.10.1", "192.168.1.0/24", "10.9.8.7/32"]
    assert wyoming[0]["destination"] == "10.100.10.10"
    web = yaml.safe_load(ws.read("host_vars/web.yml"))
    assert "aistack-wyoming" not in web["aistack_instance"]["devices"]


def test_own_port_name_and_zeroconf_off(ws: Workspace) -> None:
    text = with_lan(f"listen: {LAN_ADDRESS}\nport: 10400\nallow: [192.168.1.0/24]\nzeroconf: false")
    text = text.replace(
        '          limits.cpu: "2"\n',
        '          limits.cpu: "2"\n        vars:\n          stt_server_wyoming_port: 10301\n',
    )
    ws.write(text)
    assert ws.sync().code == 0
    ai = yaml.safe_load(ws.read("host_vars/ai.yml"))
    device = ai["aistack_instance"]["devices"]["aistack-wyoming"]
    assert (device["listen"], device["connect"]) == (
        f"tcp:{LAN_ADDRESS}:10400",
        "tcp:10.100.10.10:10301",
    )
    assert "aistack_mdns_services" not in yaml.safe_load(ws.read("group_vars/all.yml"))


def test_switched_off_publishes_nothing_and_changes_no_file(ws: Workspace) -> None:
    assert ws.sync().code == 0
    before = {p: ws.read(p) for p in ("host_vars/ai.yml", "group_vars/all.yml")}
    ws.write(with_lan("enabled: false\nlisten: 192.168.77.1\nallow: [192.168.1.0/24]"))
    assert ws.sync().code == 0
    assert {p: ws.read(p) for p in before} == before


@pytest.mark.parametrize(
    ("body", "where", "says"),
    [
        (f"listen: {LAN_ADDRESS}\nallow: [192.168.1.0/33]", "allow[0]", "not an IPv4 network"),
        (f"listen: {LAN_ADDRESS}\nallow: []", "wyoming_lan.allow", "must list the networks"),
        (f"listen: {LAN_ADDRESS}", "wyoming_lan.allow", "must list the networks"),
        ("listen: 0.0.0.0\nallow: [192.168.1.0/24]", "listen", "NAT-mode proxy needs"),
        ("listen: lan\nallow: [192.168.1.0/24]", "listen", "not an IPv4 address"),
        ("listen: 192.168.77.1\nallow: [192.168.1.0/24]", "listen", "not an address of this host"),
        (f"listen: {LAN_ADDRESS}\nport: 0\nallow: [10.0.0.0/8]", "port", "not a TCP port"),
        (f"listen: {LAN_ADDRESS}\nallow: [10.0.0.0/8]\nzeroconf: yes please", "zeroconf", "true"),
        (f"listen: {LAN_ADDRESS}\nallow: [10.0.0.0/8]\nlisten_port: 1", "listen_port", "unknown"),
    ],
)
def test_bad_values_are_reported_at_their_line(
    ws: Workspace, body: str, where: str, says: str
) -> None:
    lines = errors(ws, with_lan(body))
    assert any(where in line and says in line for line in lines), lines


def test_switch_on_a_machine_without_stt_server_is_refused(ws: Workspace) -> None:
    lines = errors(ws, with_lan(f"listen: {LAN_ADDRESS}\nallow: [10.0.0.0/8]", machine="web"))
    assert any("machines.web.wyoming_lan" in line and "stt_server" in line for line in lines)


def test_port_of_the_front_door_is_refused(ws: Workspace) -> None:
    text = with_lan(f"listen: {LAN_ADDRESS}\nport: 8443\nallow: [10.0.0.0/8]")
    lines = errors(ws, text + "front_door:\n  stt_port: 8443\n")
    assert any("wyoming_lan.port" in line and "front_door.stt_port" in line for line in lines)
    lines = errors(ws, with_lan(f"listen: {LAN_ADDRESS}\nport: 443\nallow: [10.0.0.0/8]"))
    assert any("front_door.https_port" in line for line in lines), lines


def test_port_held_on_the_host_is_refused(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        wyoming_lan, "port_holder", lambda p: "sshd (pid 7)" if p == 10300 else None
    )
    lines = errors(ws, with_lan(f"listen: {LAN_ADDRESS}\nallow: [10.0.0.0/8]"))
    assert any("taken by sshd (pid 7)" in line for line in lines), lines


def test_wyoming_kept_inside_the_container_is_refused(ws: Workspace) -> None:
    text = with_lan(f"listen: {LAN_ADDRESS}\nallow: [10.0.0.0/8]").replace(
        '          limits.cpu: "2"\n',
        '          limits.cpu: "2"\n        vars:\n          stt_server_wyoming_host: 127.0.0.1\n',
    )
    lines = errors(ws, text)
    assert any("inside the container" in line for line in lines), lines


def test_zeroconf_on_a_remote_incus_is_refused(ws: Workspace) -> None:
    text = with_lan("listen: 192.168.77.1\nallow: [10.0.0.0/8]").replace(
        "  remote: local\n",
        "  remote: gpu-box\n  remote_url: https://192.168.77.1:8443\n",
    )
    lines = errors(ws, text)
    assert any("wyoming_lan.zeroconf" in line and "zeroconf: false" in line for line in lines)
    # Without the announcement the remote's address is taken as written (it cannot be checked).
    assert not any("not an address of this host" in line for line in lines), lines


def test_machines_allowed_to_wyoming_stay_in_the_servers_allow_list(ws: Workspace) -> None:
    text = with_lan(f"listen: {LAN_ADDRESS}\nallow: [192.168.1.0/24]").replace(
        '          limits.cpu: "2"\n',
        '          limits.cpu: "2"\n        allow:\n          10300: [web]\n'
        "        vars:\n          stt_server_wyoming_zeroconf_name: kitchen-stt\n",
    )
    ws.write(text)
    assert ws.sync().code == 0
    ai = yaml.safe_load(ws.read("host_vars/ai.yml"))
    assert ai["stt_server_wyoming_allow"] == [
        "127.0.0.0/8",
        "10.100.10.0/24",
        "10.100.10.20/32",
        "192.168.1.0/24",
    ]
    everything = yaml.safe_load(ws.read("group_vars/all.yml"))
    assert everything["aistack_mdns_services"][0]["name"] == "kitchen-stt"
    ingress = everything["aistack_domains"]["lab"]["network_acl"]["ingress"]
    (rule,) = [r for r in ingress if r.get("destination_port") == "10300"]
    assert rule["source"] == ["10.100.10.1", "192.168.1.0/24", "10.100.10.20"]
