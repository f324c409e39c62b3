"""Wyoming on the LAN: one switch on the STT machine publishes Home Assistant's port.

Home Assistant usually runs on its own box, and the domain bridges are NAT-only. A machine's
``wyoming_lan:`` section publishes its Wyoming port on one of the Incus host's addresses with
an Incus proxy device in NAT mode (``nat=true``: the kernel forwards the packets, so the
service sees each client's own address; NAT mode needs a host address, not 0.0.0.0, and the
machine's static address on its managed bridge, which every machine here has). The same
networks then go into the bridge's ACL and into the server's own allow-list, and the host
announces the service over zeroconf with its address and the published port (on unless
``zeroconf: false``; see ``mdns_services``). Kept apart from front_door.py: one module, one
door.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from . import front_door
from .loader import KeyPath
from .readers import Error, switched_on, yaml_type
from .schema import Infra, Machine, default

ROLE = "stt_server"
DEVICE = "aistack-wyoming"
DEFAULT_WYOMING_PORT = 10300
# The generator's own variable: what the summary prints for Home Assistant.
SUMMARY_VAR = "aistack_wyoming_lan"
SERVICE_TYPE = "_wyoming._tcp"
ZEROCONF_NAME = "aistack-stt"


@dataclass(frozen=True)
class WyomingLan:
    """A valid, switched-on ``wyoming_lan:`` section of one machine."""

    listen: IPv4Address
    port: int
    allow: tuple[IPv4Network, ...]
    zeroconf: bool


def host_has_address(address: IPv4Address) -> bool:
    """Whether ``address`` is one of this host's own (binding to it succeeds only then)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((str(address), 0))
        except OSError:
            return False
    return True


def port_holder(port: int) -> str | None:
    """Which process of this host listens on ``port`` (front_door's rule), or None."""
    return front_door.host_port_holder(port)


def read(value: Any, path: KeyPath, error: Error) -> WyomingLan | None:
    """The section as typed values, every problem reported; None when off or unusable."""
    if value is None:
        return None
    if not isinstance(value, dict):
        error(path, f"must be a mapping (docs/infra-yml.md, wyoming_lan), not {yaml_type(value)}")
        return None
    if not switched_on("wyoming_lan", value, path, error):
        return None
    ok = True
    listen = None
    raw = value.get("listen")
    try:
        listen = IPv4Address(str(raw))
    except ValueError:
        ok = False
        error(
            path + ("listen",),
            f"'{raw}' is not an IPv4 address; write the host's LAN address, the one Home "
            "Assistant connects to (like 192.168.1.10; `ip -4 route get 1.1.1.1` shows it)",
        )
    if listen is not None and (listen.is_unspecified or listen.is_loopback):
        ok = False
        error(
            path + ("listen",),
            f"{listen} is not an address Home Assistant can reach; a NAT-mode proxy needs "
            "one address of the host's LAN interface, like 192.168.1.10",
        )
    port = value.get("port", default("wyoming_lan", "port"))
    if isinstance(port, bool) or not isinstance(port, int) or not 1 <= port <= 65535:
        ok = False
        error(path + ("port",), f"{port!r} is not a TCP port; use a whole number 1–65535")
    allow: list[IPv4Network] = []
    sources = value.get("allow")
    if not isinstance(sources, list) or not sources:
        ok = False
        error(
            path + ("allow",),
            "must list the networks that may connect, like [192.168.1.0/24] (Wyoming has no "
            "authentication: nothing else reaches the published port)",
        )
    for index, source in enumerate(sources if isinstance(sources, list) else []):
        try:
            allow.append(IPv4Network(str(source)))
        except ValueError as exc:
            ok = False
            error(
                path + ("allow", index),
                f"'{source}' is not an IPv4 network ({exc}); write one like 192.168.1.0/24 "
                "or an address like 192.168.1.20",
            )
    zeroconf = value.get("zeroconf", default("wyoming_lan", "zeroconf"))
    if not isinstance(zeroconf, bool):
        ok = False
        error(path + ("zeroconf",), f"must be true or false, not {zeroconf!r}")
    if not ok or listen is None:
        return None
    return WyomingLan(listen, port, tuple(allow), zeroconf)


def _path(machine: Machine, *keys: str) -> KeyPath:
    return ("domains", machine.domain, "machines", machine.name, "wyoming_lan", *keys)


def wyoming_port(machine: Machine) -> int:
    return int(machine.vars.get("stt_server_wyoming_port", DEFAULT_WYOMING_PORT))


def _door_ports(door: front_door.FrontDoor | None, listen: IPv4Address) -> dict[int, str]:
    if door is None:
        return {}
    if door.listen and listen not in door.listen:
        return {}
    ports = {door.https_port: "front_door.https_port"}
    if door.stt_port is not None:
        ports[door.stt_port] = "front_door.stt_port"
    return ports


def check(infra: Infra, door: front_door.FrontDoor | None, error: Error) -> None:
    """Rules that need the whole file: the role, the server's settings, clashes, the host."""
    published: dict[tuple[IPv4Address, int], str] = {}
    for machine in infra.machines:
        lan = machine.wyoming_lan
        if lan is None:
            continue
        if ROLE not in machine.roles:
            error(
                _path(machine),
                f"machine {machine.name} does not carry role {ROLE}, so it has no Wyoming "
                "service to publish; move wyoming_lan to the stt_server machine",
            )
            continue
        vars_ = machine.vars
        if vars_.get("stt_server_wyoming_enabled", True) is False or str(
            vars_.get("stt_server_wyoming_host", "0.0.0.0")
        ).startswith("127."):
            error(
                _path(machine),
                f"vars of machine {machine.name} keep Wyoming off or inside the container "
                "(stt_server_wyoming_enabled / stt_server_wyoming_host); remove them to "
                "publish it, or set wyoming_lan.enabled: false",
            )
        clash = _door_ports(door, lan.listen).get(lan.port)
        if clash:
            error(
                _path(machine, "port"),
                f"port {lan.port} is also the front door's ({clash}); give Wyoming its own "
                "port (10300 is Home Assistant's usual one)",
            )
        for other in infra.machines:
            for device, used in front_door._proxy_ports(other.devices):
                if used == lan.port:
                    error(
                        _path(machine, "port"),
                        f"port {lan.port} is already exposed by device {device} of machine "
                        f"{other.name}; choose another wyoming_lan.port",
                    )
        earlier = published.setdefault((lan.listen, lan.port), machine.name)
        if earlier != machine.name:
            error(
                _path(machine, "port"),
                f"machine {earlier} already publishes Wyoming on {lan.listen}:{lan.port}; "
                "choose another port",
            )
        if lan.zeroconf and (infra.settings.remote != "local" or infra.cluster is not None):
            error(
                _path(machine, "zeroconf"),
                "the announcement is made by the Incus host, and aistack provisions only this "
                "host's; set wyoming_lan.zeroconf: false and add the Wyoming integration in "
                "Home Assistant by hand (host and port)",
            )
        if infra.settings.remote == "local" and infra.cluster is None:
            if not host_has_address(lan.listen):
                error(
                    _path(machine, "listen"),
                    f"{lan.listen} is not an address of this host; write the address of its "
                    "LAN interface (`ip -4 -brief address` lists them)",
                )
            holder = port_holder(lan.port)
            if holder:
                error(
                    _path(machine, "port"),
                    f"port {lan.port} on this host is taken by {holder}; stop it or choose "
                    "another wyoming_lan.port",
                )


def devices(machine: Machine, lan: WyomingLan) -> dict[str, dict[str, str]]:
    """The NAT-mode proxy device: the host's address and port → the machine's Wyoming port."""
    return {
        DEVICE: {
            "type": "proxy",
            "listen": f"tcp:{lan.listen}:{lan.port}",
            "connect": f"tcp:{machine.ip}:{wyoming_port(machine)}",
            "nat": "true",
        }
    }


def role_vars(machine: Machine, lan: WyomingLan, own_networks: list[str]) -> dict[str, Any]:
    """The stt_server role's allow-list and the summary's address.

    ``own_networks`` are the stack's sources that already reach Wyoming through the bridge
    (the machine's domain subnet, the host's gateway address there included, and the
    machines ``allow:`` names): the server's allow-list keeps them besides the LAN's.
    """
    allow = [str(n) for n in lan.allow]
    return {
        SUMMARY_VAR: {
            "address": str(lan.listen),
            "port": lan.port,
            "allow": allow,
            "zeroconf": lan.zeroconf,
        },
        "stt_server_wyoming_allow": ["127.0.0.0/8", *own_networks, *allow],
    }


def mdns_services(infra: Infra) -> list[dict[str, Any]]:
    """What the host announces over mDNS (the incus_host role's ``incus_host_mdns_services``).

    mDNS is link-local and the bridges are NAT-only: an announcement from inside the
    container never reaches the LAN. The host, whose address Home Assistant connects to,
    announces instead (avahi, a static service), so the record carries the host's address on
    the LAN and the published port.
    """
    result = []
    for machine in infra.machines:
        lan = machine.wyoming_lan
        if lan is None or not lan.zeroconf or ROLE not in machine.roles:
            continue
        name = str(machine.vars.get("stt_server_wyoming_zeroconf_name") or ZEROCONF_NAME)
        result.append({"name": name, "type": SERVICE_TYPE, "port": lan.port})
    return result
