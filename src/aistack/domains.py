"""The ``domains:`` section: each domain's name, subnet and profiles, then its machines.

A domain that cannot be built (bad name, unusable subnet) still has its machines read,
so that their problems are reported in the same run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from . import addressing
from .global_settings import CheckedSettings
from .loader import KeyPath
from .machines import DomainScope, MachineReader
from .names import Claims, Taken, domain_name_problem
from .readers import Reader, Section, usable_name, yaml_type
from .schema import Domain, Machine, Profile


@dataclass(frozen=True)
class CheckedDomains:
    """The domains that could be built; ``complete`` is False when one domain or machine
    could not be, so later checks would report as missing what is only unreadable."""

    domains: tuple[Domain, ...]
    complete: bool


def check(
    value: Any, settings: CheckedSettings, roles: frozenset[str], read: Reader
) -> CheckedDomains:
    """Read ``domains:``; every problem goes to ``read.error``."""
    path: KeyPath = ("domains",)
    if value is None:
        return CheckedDomains((), True)
    if not isinstance(value, dict):
        read.error(path, f"must be a mapping of domain name to domain, not {yaml_type(value)}")
        return CheckedDomains((), True)
    if not value:
        read.error(path, "defines no domain; add at least one, like lab: {subnet_id: 10}")
    claims = Claims()
    taken = Taken(domains=frozenset(str(name) for name in value), roles=roles)
    reader = _DomainReader(read, settings, claims, MachineReader(read, taken, claims))
    result = []
    for name, body in value.items():
        domain = reader.domain(str(name), body)
        if domain is None:
            reader.complete = False
        else:
            result.append(domain)
    return CheckedDomains(tuple(result), reader.complete)


@dataclass
class _DomainReader:
    read: Reader
    settings: CheckedSettings
    claims: Claims
    machines: MachineReader
    complete: bool = True

    def domain(self, name: str, body: Any) -> Domain | None:
        read = self.read
        path: KeyPath = ("domains", name)
        problem = domain_name_problem(name)
        if problem:
            read.error(path, problem)
        data = read.section(body, path, "domain")
        if data is None:
            return None
        network = self._network(data, name)
        ephemeral = data.boolean("ephemeral")
        profiles = self._profiles(data.get("profiles"), data.where("profiles"))
        machines_value = data.get("machines")
        machines: list[Machine] = []
        if machines_value is not None and not isinstance(machines_value, dict):
            read.error(
                data.where("machines"),
                f"must be a mapping of machine name to machine, not {yaml_type(machines_value)}",
            )
        elif machines_value:
            scope = DomainScope(
                name, network, profiles, ephemeral, self.settings.settings.default_image
            )
            for mname, mbody in machines_value.items():
                machine = self.machines.machine(str(mname), mbody, scope)
                if machine is None:
                    self.complete = False
                else:
                    machines.append(machine)
        if problem or network is None:
            return None
        return Domain(
            name=name,
            description=data.text("description"),
            subnet_id=int(data.get("subnet_id")),
            ephemeral=ephemeral,
            profiles=profiles,
            machines=tuple(machines),
        )

    def _network(self, data: Section, name: str) -> addressing.DomainNetwork | None:
        """The domain's network, claimed for it; None when its subnet_id is unusable."""
        subnet_id = data.get("subnet_id")
        if subnet_id is None:
            return None  # reported as a missing required key
        where = data.where("subnet_id")
        owners = self.claims.subnets
        if isinstance(subnet_id, bool) or not isinstance(subnet_id, int):
            self.read.error(
                where, f"must be a whole number 0–255 (the third octet), not {subnet_id!r}"
            )
        elif not 0 <= subnet_id <= 255:
            self.read.error(where, f"{subnet_id} is out of range; the third octet must be 0–255")
        elif subnet_id in owners:
            self.read.error(
                where,
                f"{subnet_id} is already used by domain {owners[subnet_id]}; "
                "give every domain its own subnet_id",
            )
        elif self.settings.base_subnet_ok:
            # With a broken base_subnet every address check would be noise.
            owners[subnet_id] = name
            return addressing.DomainNetwork.of(self.settings.settings.base_subnet, subnet_id)
        return None

    def _profiles(self, value: Any, path: KeyPath) -> dict[str, Profile]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.read.error(
                path, f"must be a mapping of profile name to profile, not {yaml_type(value)}"
            )
            return {}
        result = {}
        for name, body in value.items():
            where = path + (str(name),)
            if not usable_name(name):
                self.read.error(
                    where,
                    f"'{name}' is not a usable profile name; use letters, digits, '-', '_' and '.'",
                )
                continue
            data = self.read.section(body, where, "profile")
            if data is None:
                continue
            result[name] = Profile(
                name=name,
                description=data.text("description"),
                config=self.read.config(data.get("config"), data.where("config")),
                devices=self.read.devices(data.get("devices"), data.where("devices")),
            )
        return result
