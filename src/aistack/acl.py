"""Incus network ACLs derived from the wiring: each service port is closed to
every machine that is not wired to it.

Each domain's bridge gets one ACL (``aistack-<domain>``); Incus rejects what no
rule allows, in both directions. Ingress rules (traffic into the bridge,
towards a machine) open each service port of each machine to the machines
wired to it, the sources its ``allow:`` adds, and the host (the bridge's
gateway address: the controller checks health from there, and the HTTPS front
door forwards from there). Egress rules (traffic out of the bridge) let every
machine reach addresses outside ``<base_subnet>.0.0/16`` (mirrors, the
internet) and the services in other domains it is wired or allowed to.
DNS and DHCP on the bridge are Incus's own baseline rules and stay open.

Why the bridge and not each NIC: Incus 6.0 looks a NIC's ACL up in the
instance's project, while ACLs live with the networks in ``default``
(lxc/incus#2918). Traffic between two machines on the same bridge passes
these rules only when the host's ``br_netfilter`` hands bridged packets to the
firewall (``net.bridge.bridge-nf-call-iptables = 1``); the infra play makes
sure it does. The firewall sees traffic between domains before the bridge's
NAT rewrites it, so rules can name the real machine addresses.
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network

from . import addressing
from .schema import DEFAULT_PORTS, PORT_VARS, Infra, Machine
from .wiring import CONSUMER_ROLE

ACL_PREFIX = "aistack-"
MAX_ACL_NAME = 63
# Port variable of each service role; Open WebUI's is not part of the wiring.
SERVICE_PORT_VARS = {**PORT_VARS, CONSUMER_ROLE: "open_webui_port"}
SERVICE_ROLES = tuple(SERVICE_PORT_VARS)
# aistack-stt's Wyoming server (Home Assistant) is no wired service: the host reaches it,
# and allow: opens it to Home Assistant. The stt_server role's defaults: on, port 10300.
WYOMING_PORT = 10300


@dataclass(frozen=True)
class Rule:
    """One Incus ACL rule (always ``allow``); field names are Incus's own."""

    description: str
    protocol: str = ""
    source: str = ""
    destination: str = ""
    destination_port: str = ""

    def as_incus(self) -> dict[str, str | list[str]]:
        """Incus's fields; an address list stays a YAML list (incus_network_acl joins it),
        which keeps the generated lines short."""
        rule: dict[str, str | list[str]] = {
            "action": "allow",
            "state": "enabled",
            "description": self.description,
        }
        for key in ("protocol", "source", "destination", "destination_port"):
            value = getattr(self, key)
            if value:
                parts = value.split(",")
                rule[key] = parts if len(parts) > 1 else value
        return rule


@dataclass(frozen=True)
class Acl:
    name: str
    description: str
    ingress: tuple[Rule, ...]
    egress: tuple[Rule, ...]

    def as_incus(self) -> dict[str, object]:
        return {
            "name": self.name,
            "description": self.description,
            "ingress": [r.as_incus() for r in self.ingress],
            "egress": [r.as_incus() for r in self.egress],
        }


@dataclass(frozen=True)
class Grant:
    """One source may open TCP connections to one port of one provider."""

    provider: Machine
    port: int
    role: str
    source: str  # an IPv4 network in CIDR form (a machine's address is a /32)
    domain: str | None  # the source machine's domain; None for a CIDR from allow:


def parse_source(source: object) -> tuple[str, str | None]:
    """A source of ``allow:`` in its canonical form, or the reason it is not one.

    Machine names are checked later, once every machine is known; anything with
    a dot or a slash must be an IPv4 address or network.
    """
    if not isinstance(source, str) or not source:
        return "", f"{source!r} is not a machine name or an IPv4 network; write one as a string"
    if "." in source or "/" in source:
        try:
            return str(IPv4Network(source)), None
        except ValueError as exc:
            return "", (
                f"'{source}' is not an IPv4 network ({exc}); write an address like "
                "192.168.1.5 or a network like 192.168.1.0/24"
            )
    problem = addressing.label_problem(source)
    if problem:
        return "", f"{problem}; or write an IPv4 address or network"
    return source, None


def acl_name(domain: str) -> str:
    """Domain names are at most 12 characters, well inside Incus's 63."""
    return f"{ACL_PREFIX}{domain}"


def service_port(machine: Machine, role: str) -> int:
    return int(machine.vars.get(SERVICE_PORT_VARS[role], DEFAULT_PORTS[role]))


def grants(infra: Infra, wired: dict[str, dict[str, str]]) -> list[Grant]:
    """Who may talk to which port: the wiring plus every machine's ``allow:``.

    ``wired`` maps a consumer to {role: provider machine name}.
    """
    by_name = {m.name: m for m in infra.machines}
    result: list[Grant] = []
    for consumer_name, roles in sorted(wired.items()):
        consumer = by_name[consumer_name]
        for role, provider_name in sorted(roles.items()):
            provider = by_name[provider_name]
            port = service_port(provider, role)
            result.append(Grant(provider, port, role, f"{consumer.ip}/32", consumer.domain))
    for provider in infra.machines:
        for entry in provider.allow:
            port = entry.port if entry.port is not None else service_port(provider, entry.role)
            for source in entry.sources:
                machine = by_name.get(source)
                if machine is not None:
                    grant = Grant(provider, port, entry.role, f"{machine.ip}/32", machine.domain)
                else:
                    grant = Grant(provider, port, entry.role, source, None)
                result.append(grant)
    return result


def _outside(base: IPv4Network) -> str:
    """Every IPv4 address outside ``base``, as the CIDR list Incus takes."""
    return ",".join(str(n) for n in sorted(IPv4Network("0.0.0.0/0").address_exclude(base)))


def _short(network: str) -> str:
    return network.removesuffix("/32")


def _label(role: str, port: int) -> str:
    return role if role else f"port {port}"


def grpc_port(machine: Machine) -> int:
    """aistack-stt's gRPC port (stt_server_grpc_port; 0: closed)."""
    if "stt_server" not in machine.roles:
        return 0
    return int(machine.vars.get("stt_server_grpc_port", 0) or 0)


def _grpc_beside_http(machine: Machine, ports: dict[int, tuple[str, list[str]]]) -> None:
    """The gRPC port is open to exactly whoever may reach the HTTP port (same wiring)."""
    port = grpc_port(machine)
    if port and service_port(machine, "stt_server") in ports:
        _, sources = ports[service_port(machine, "stt_server")]
        ports.setdefault(port, ("stt_server gRPC", list(sources)))


def build(infra: Infra, wired: dict[str, dict[str, str]]) -> dict[str, Acl]:
    """The ACL of every domain's bridge, keyed by domain name."""
    base = IPv4Network(f"{infra.settings.base_subnet}.0.0/16")
    outside = _outside(base)
    all_grants = grants(infra, wired)
    result: dict[str, Acl] = {}
    for domain in infra.domains:
        net = addressing.DomainNetwork.of(infra.settings.base_subnet, domain.subnet_id)
        host = str(net.gateway)
        ingress: list[Rule] = []
        for machine in domain.machines:
            # port -> (role, sources); the host may reach every service port.
            ports: dict[int, tuple[str, list[str]]] = {}
            for role in SERVICE_ROLES:
                if role in machine.roles:
                    ports.setdefault(service_port(machine, role), (role, [host]))
            if "stt_server" in machine.roles and machine.vars.get(
                "stt_server_wyoming_enabled", True
            ):
                port = int(machine.vars.get("stt_server_wyoming_port", WYOMING_PORT))
                _, sources = ports.setdefault(port, ("wyoming", [host]))
                # Published on the LAN (wyoming_lan): the NAT-mode proxy keeps each client's
                # own address, so the rule names the networks infra.yml allows.
                lan = machine.wyoming_lan
                sources.extend(str(n) for n in (lan.allow if lan is not None else ()))
            for grant in all_grants:
                if grant.provider is machine:
                    _, sources = ports.setdefault(grant.port, (grant.role, [host]))
                    if _short(grant.source) not in sources:
                        sources.append(_short(grant.source))
            _grpc_beside_http(machine, ports)
            for port, (role, sources) in sorted(ports.items()):
                ingress.append(
                    Rule(
                        f"{machine.name}: {_label(role, port)} from its clients and the host",
                        protocol="tcp",
                        source=",".join(sources),
                        destination=str(machine.ip),
                        destination_port=str(port),
                    )
                )
        ingress.append(Rule("ICMP", protocol="icmp4"))
        egress = [
            Rule("everything outside the stack", destination=outside),
            Rule("ICMP", protocol="icmp4"),
        ]
        remote = sorted(
            {
                (_short(g.source), str(g.provider.ip), g.port, g.role)
                for g in all_grants
                if g.provider.domain != domain.name and g.domain in (domain.name, None)
            }
        )
        remote += sorted(
            {
                (_short(g.source), str(g.provider.ip), grpc_port(g.provider), "stt_server gRPC")
                for g in all_grants
                if g.provider.domain != domain.name
                and g.domain in (domain.name, None)
                and g.role == "stt_server"
                and g.port == service_port(g.provider, "stt_server")
                and grpc_port(g.provider)
            }
        )
        for source, address, port, role in remote:
            egress.append(
                Rule(
                    f"{_label(role, port)} on {address} in another domain",
                    protocol="tcp",
                    source=source,
                    destination=address,
                    destination_port=str(port),
                )
            )
        result[domain.name] = Acl(
            acl_name(domain.name),
            f"aistack domain {domain.name}: who may reach which service",
            tuple(ingress),
            tuple(egress),
        )
    return result
