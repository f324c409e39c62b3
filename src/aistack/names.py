"""Names and addresses infra.yml hands out, and who already holds each one.

Domains, machines and roles all become Ansible groups or hosts of one inventory, and
subnets and addresses must not overlap, so each is claimed once; the second claimant
is told who holds it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address

from . import addressing, cluster

# Ansible groups the generator writes itself; no domain or machine may take their names.
RESERVED_GROUPS = ("aistack", "all", "ungrouped", cluster.INVENTORY_GROUP)


@dataclass
class Claims:
    """What the domains and machines read so far hold: subnet ids, machine names, addresses."""

    subnets: dict[int, str] = field(default_factory=dict)
    machines: dict[str, str] = field(default_factory=dict)
    ips: dict[IPv4Address, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Taken:
    """Names a machine may not use: every domain's (read before any machine) and the roles'."""

    domains: frozenset[str]
    roles: frozenset[str]


def domain_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a domain (its project, bridge and Ansible group), or None."""
    problem = addressing.label_problem(name)
    if problem is None and len(name) > addressing.MAX_DOMAIN_NAME:
        bridge = addressing.bridge_name(name)
        problem = (
            f"'{name}' makes the bridge name '{bridge}' {len(bridge)} characters long; "
            f"Linux allows {addressing.MAX_BRIDGE_NAME}, so use a domain name of at "
            f"most {addressing.MAX_DOMAIN_NAME} characters"
        )
    if problem is None and name in RESERVED_GROUPS:
        problem = f"'{name}' is an Ansible group the generator uses; choose another name"
    return problem


def machine_name_problem(name: str, claims: Claims, taken: Taken) -> str | None:
    """Why ``name`` cannot name a machine (an instance and an Ansible host), or None."""
    problem = addressing.label_problem(name)
    if problem is None and name in claims.machines:
        problem = (
            f"machine name '{name}' is already used in domain {claims.machines[name]}; "
            "instance names must be unique across all domains"
        )
    if problem is None and name in taken.domains:
        problem = (
            f"'{name}' is also the name of a domain, which is an Ansible group; "
            "choose another machine name"
        )
    if problem is None and name in RESERVED_GROUPS + tuple(taken.roles):
        problem = f"'{name}' is also an Ansible group name; choose another machine name"
    return problem
