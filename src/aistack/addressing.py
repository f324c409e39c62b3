"""Names and addresses derived from a domain: project, bridge, subnet, ranges.

Kept in one place because the generator, the validator and the error messages
must agree on them to the octet (docs/architecture.md, "Names").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

BRIDGE_PREFIX = "br-"
# Linux limits interface names to 15 bytes (IFNAMSIZ - 1).
MAX_BRIDGE_NAME = 15
MAX_DOMAIN_NAME = MAX_BRIDGE_NAME - len(BRIDGE_PREFIX)
STATIC_FIRST = 2
STATIC_LAST = 199
DHCP_FIRST = 200
DHCP_LAST = 254

# Incus instance and project names are host names: letters, digits and
# dashes, starting with a letter; lower case keeps them DNS labels everywhere.
_LABEL = re.compile(r"^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_BASE_SUBNET = re.compile(r"^(\d{1,3})\.(\d{1,3})$")


def label_problem(name: object) -> str | None:
    """Why ``name`` is not a usable DNS label, or None when it is."""
    if not isinstance(name, str) or not name:
        return "must be a non-empty name"
    if len(name) > 63:
        return f"'{name}' is {len(name)} characters long; a DNS label has at most 63"
    if not _LABEL.fullmatch(name):
        return (
            f"'{name}' is not a DNS label; use lower-case letters, digits and '-', "
            "starting with a letter and not ending with '-'"
        )
    return None


def bridge_name(domain: str) -> str:
    return f"{BRIDGE_PREFIX}{domain}"


def base_subnet_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return f'{value!r} must be a quoted string of two octets, like "10.100"'
    match = _BASE_SUBNET.fullmatch(value)
    if not match or any(int(octet) > 255 for octet in match.groups()):
        return f"'{value}' is not two octets; write it like \"10.100\""
    return None


@dataclass(frozen=True)
class DomainNetwork:
    """The /24 of one domain and the addresses that bound its ranges."""

    subnet: IPv4Network
    gateway: IPv4Address
    static_first: IPv4Address
    static_last: IPv4Address
    dhcp_first: IPv4Address
    dhcp_last: IPv4Address

    @classmethod
    def of(cls, base_subnet: str, subnet_id: int) -> DomainNetwork:
        subnet = IPv4Network(f"{base_subnet}.{subnet_id}.0/24")
        first = subnet.network_address
        return cls(
            subnet,
            gateway=first + 1,
            static_first=first + STATIC_FIRST,
            static_last=first + STATIC_LAST,
            dhcp_first=first + DHCP_FIRST,
            dhcp_last=first + DHCP_LAST,
        )

    def ip_problem(self, ip: IPv4Address, domain: str) -> str | None:
        """Why ``ip`` cannot be a static address in this domain, or None."""
        usable = f"use an address in {self.static_first}–{self.static_last}"
        if ip not in self.subnet:
            return f"{ip} is outside domain {domain}'s subnet {self.subnet}; {usable}"
        if ip == self.subnet.network_address:
            return f"{ip} is the network address of {self.subnet}; {usable}"
        if ip == self.gateway:
            return f"{ip} is the gateway of {self.subnet} (the bridge itself); {usable}"
        if ip == self.subnet.broadcast_address:
            return f"{ip} is the broadcast address of {self.subnet}; {usable}"
        if ip >= self.dhcp_first:
            return (
                f"{ip} lies in the DHCP range {self.dhcp_first}–{self.dhcp_last} of domain "
                f"{domain}, where it could be handed to another instance; {usable}"
            )
        return None
