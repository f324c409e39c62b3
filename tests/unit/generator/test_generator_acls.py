"""The network ACLs `aistack sync` derives from the wiring: which source may
reach which port of which machine (the real Incus behaviour is in
tests/integration/test_network_acls.py)."""

from __future__ import annotations

import yaml
from generator_support import EXAMPLE, Workspace

TWO_DOMAINS = (
    EXAMPLE
    + """\
  dev:
    subnet_id: 11
    machines:
      box:
        ip: 10.100.11.10
      far:
        ip: 10.100.11.20
"""
)


def acls(ws: Workspace, text: str) -> dict[str, dict]:
    ws.write(text)
    result = ws.sync()
    assert result.code == 0, result.err
    domains = yaml.safe_load(ws.read("group_vars/all.yml"))["aistack_domains"]
    return {name: d["network_acl"] for name, d in domains.items()}


def opened(acl: dict) -> dict[tuple[str, str], list[str]]:
    """(destination, port) → sources, as the ingress rules open them."""
    found = {}
    for rule in acl["ingress"]:
        if rule.get("protocol") == "tcp":
            sources = rule["source"]
            found[(rule["destination"], rule["destination_port"])] = (
                sources if isinstance(sources, list) else [sources]
            )
    return found


def test_each_service_port_opens_to_its_wired_clients_and_the_host(ws: Workspace) -> None:
    lab = acls(ws, EXAMPLE)["lab"]
    assert lab["name"] == "aistack-lab"
    assert opened(lab) == {
        ("10.100.10.10", "11434"): ["10.100.10.1", "10.100.10.20"],
        ("10.100.10.10", "8000"): ["10.100.10.1", "10.100.10.20"],
        ("10.100.10.10", "10300"): ["10.100.10.1"],
        ("10.100.10.20", "8080"): ["10.100.10.1"],
    }
    assert all(rule["action"] == "allow" for rule in lab["ingress"] + lab["egress"])


def test_egress_reaches_the_outside_but_not_other_domains(ws: Workspace) -> None:
    dev = acls(ws, TWO_DOMAINS)["dev"]
    assert opened(dev) == {}
    outside = next(r for r in dev["egress"] if r["description"].startswith("everything"))
    networks = outside["destination"]
    assert "10.101.0.0/16" in networks and "11.0.0.0/8" in networks
    assert not [n for n in networks if n.startswith("10.100.")]
    assert not [r for r in dev["egress"] if r.get("protocol") == "tcp"]


def test_allow_opens_a_port_to_a_machine_of_another_domain(ws: Workspace) -> None:
    text = TWO_DOMAINS.replace(
        "roles: [ollama_server, stt_server]",
        "roles: [ollama_server, stt_server]\n"
        "        allow: {ollama_server: [box], 9100: [192.168.1.0/24]}",
    )
    found = acls(ws, text)
    assert opened(found["lab"])[("10.100.10.10", "11434")] == [
        "10.100.10.1",
        "10.100.10.20",
        "10.100.11.10",
    ]
    assert opened(found["lab"])[("10.100.10.10", "9100")] == ["10.100.10.1", "192.168.1.0/24"]
    # box's own bridge lets exactly that connection out; far gets nothing.
    out = [r for r in found["dev"]["egress"] if r.get("protocol") == "tcp"]
    assert out == [
        {
            "action": "allow",
            "state": "enabled",
            "description": "ollama_server on 10.100.10.10 in another domain",
            "protocol": "tcp",
            "source": "10.100.11.10",
            "destination": "10.100.10.10",
            "destination_port": "11434",
        },
        {
            "action": "allow",
            "state": "enabled",
            "description": "port 9100 on 10.100.10.10 in another domain",
            "protocol": "tcp",
            "source": "192.168.1.0/24",
            "destination": "10.100.10.10",
            "destination_port": "9100",
        },
    ]


def test_a_custom_service_port_moves_the_rule(ws: Workspace) -> None:
    text = EXAMPLE.replace(
        "roles: [ollama_server, stt_server]",
        "roles: [ollama_server, stt_server]\n        vars: {stt_server_port: 9000}",
    )
    assert ("10.100.10.10", "9000") in opened(acls(ws, text)["lab"])


def test_wyoming_opens_to_the_host_and_allow_widens_it_or_it_is_closed_when_off(
    ws: Workspace,
) -> None:
    widened = EXAMPLE.replace(
        "roles: [ollama_server, stt_server]",
        "roles: [ollama_server, stt_server]\n        allow: {10300: [192.168.1.0/24]}",
    )
    assert opened(acls(ws, widened)["lab"])[("10.100.10.10", "10300")] == [
        "10.100.10.1",
        "192.168.1.0/24",
    ]
    off = EXAMPLE.replace(
        "roles: [ollama_server, stt_server]",
        "roles: [ollama_server, stt_server]\n        vars: {stt_server_wyoming_enabled: false}",
    )
    assert ("10.100.10.10", "10300") not in opened(acls(ws, off)["lab"])


def test_network_acls_false_writes_none(ws: Workspace) -> None:
    text = EXAMPLE.replace(
        "  storage_pool: default\n", "  storage_pool: default\n  network_acls: false\n"
    )
    assert acls(ws, text) == {"lab": None}


def test_the_grpc_port_opens_to_exactly_who_may_reach_the_http_port(ws: Workspace) -> None:
    grpc = EXAMPLE.replace(
        "roles: [ollama_server, stt_server]",
        "roles: [ollama_server, stt_server]\n"
        "        vars: {stt_server_grpc_port: 50051}\n"
        "        allow: {stt_server: [192.168.1.0/24]}",
    )
    lab = opened(acls(ws, grpc)["lab"])
    http = lab[("10.100.10.10", "8000")]
    assert http == ["10.100.10.1", "10.100.10.20", "192.168.1.0/24"]
    assert lab[("10.100.10.10", "50051")] == http
    # Off by default: no rule for it.
    assert not [key for key in opened(acls(ws, EXAMPLE)["lab"]) if key[1] == "50051"]


def test_the_grpc_port_follows_a_client_in_another_domain(ws: Workspace) -> None:
    text = TWO_DOMAINS.replace(
        "roles: [ollama_server, stt_server]",
        "roles: [ollama_server, stt_server]\n"
        "        vars: {stt_server_grpc_port: 50051}\n"
        "        allow: {stt_server: [box]}",
    )
    found = acls(ws, text)
    assert "10.100.11.10" in opened(found["lab"])[("10.100.10.10", "50051")]
    out = {(r["source"], r["destination_port"]) for r in found["dev"]["egress"] if "source" in r}
    assert {("10.100.11.10", "8000"), ("10.100.11.10", "50051")} <= out
