"""One machine of a domain: its name, address, roles, GPU, profiles, vars and ``allow:``.

A machine is read against what its domain gives it (``DomainScope``) and what the
machines before it hold (``names.Claims``). It is built only when its name and
address are usable; everything else that is wrong is still reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address
from typing import Any

from . import acl, addressing, wyoming_lan
from .loader import KeyPath
from .names import Claims, Taken, machine_name_problem
from .readers import Reader, Section, yaml_type
from .schema import (
    DEFAULT_PROFILE,
    GPU_PROFILE,
    HOST_ONLY_ROLES,
    MACHINE_TYPES,
    RESERVED_VARS,
    Allow,
    Gpu,
    Machine,
    Profile,
)

_PCI = re.compile(r"^(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class DomainScope:
    """What a machine takes from its domain and from ``global:``."""

    name: str
    network: addressing.DomainNetwork | None  # None: the domain's subnet is unusable
    profiles: dict[str, Profile]
    ephemeral: bool
    default_image: str


def has_gpu(devices: dict[str, dict[str, str]]) -> bool:
    return any(device.get("type") == "gpu" for device in devices.values())


@dataclass(frozen=True)
class MachineReader:
    """Reads the machines of every domain of one infra.yml."""

    read: Reader
    taken: Taken
    claims: Claims

    def machine(self, name: str, body: Any, scope: DomainScope) -> Machine | None:
        read, domain = self.read, scope.name
        path: KeyPath = ("domains", domain, "machines", name)
        problem = machine_name_problem(name, self.claims, self.taken)
        if problem:
            read.error(path, problem)
        else:
            self.claims.machines[name] = domain
        data = read.section(body, path, "machine")
        if data is None:
            return None
        ip = self._ip(data.get("ip"), data.where("ip"), scope, name)
        roles = self._roles(data.get("roles"), data.where("roles"))
        gpu = self._gpu(data.get("gpu"), data.where("gpu"))
        devices = read.devices(data.get("devices"), data.where("devices"))
        used = self._profiles(data, scope, gpu)
        needs_gpu = (
            gpu is not None
            or has_gpu(devices)
            or any(has_gpu(scope.profiles[p].devices) for p in used if p in scope.profiles)
        )
        vars_ = self._vars(data.get("vars"), data.where("vars"))
        wiring_data = read.section(data.get("wiring"), data.where("wiring"), "wiring")
        wiring_choice = {}
        for key, target in (wiring_data or {}).items():
            text = read.string(target, data.where("wiring") + (key,))
            if text is not None:
                wiring_choice[key] = text
        allow = self._allow(data.get("allow"), data.where("allow"), [r for _, r in roles])
        lan_data = data.get("wyoming_lan")
        if isinstance(lan_data, dict):
            read.section(lan_data, data.where("wyoming_lan"), "wyoming_lan")
        lan = wyoming_lan.read(lan_data, data.where("wyoming_lan"), read.error)
        machine_type = data.choice("type", MACHINE_TYPES)
        if gpu is not None and machine_type == "vm":
            read.error(
                data.where("gpu"),
                "gpu: uses the NVIDIA container runtime, which a vm "
                "cannot use; pass the GPU to the vm under devices "
                "(type: gpu, gputype: physical, pci: ...) instead",
            )
        if ip is None or problem:
            return None
        return Machine(
            name=name,
            domain=domain,
            description=data.text("description"),
            type=machine_type,
            ip=ip,
            gpu=gpu,
            profiles=(DEFAULT_PROFILE, *used),
            roles=tuple(r for _, r in roles),
            config=read.config(data.get("config"), data.where("config")),
            devices=devices,
            image=read.image(data.get("image"), data.where("image")) or scope.default_image,
            ephemeral=data.boolean("ephemeral", scope.ephemeral),
            vars=vars_,
            wiring=wiring_choice,
            needs_gpu=needs_gpu,
            allow=allow,
            target=read.string(data.get("target"), data.where("target")),
            wyoming_lan=lan,
        )

    def _ip(
        self, value: Any, path: KeyPath, scope: DomainScope, machine: str
    ) -> IPv4Address | None:
        if value is None:
            return None  # reported as a missing required key
        try:
            ip = IPv4Address(str(value).strip())
        except (AddressValueError, ValueError):
            self.read.error(path, f"'{value}' is not an IPv4 address; write it like 10.100.10.10")
            return None
        if scope.network is not None:
            problem = scope.network.ip_problem(ip, scope.name)
            if problem:
                self.read.error(path, problem)
                return None
        owners = self.claims.ips
        if ip in owners:
            self.read.error(
                path,
                f"{ip} is already the address of machine {owners[ip]}; "
                "give every machine its own address",
            )
            return None
        owners[ip] = machine
        return ip

    def _roles(self, value: Any, path: KeyPath) -> list[tuple[int, str]]:
        result = []
        for index, role in self.read.name_list(value, path):
            if role in HOST_ONLY_ROLES:
                self.read.error(
                    path + (index,),
                    f"role '{role}' runs on the Incus host, not in a "
                    "machine; remove it from this list",
                )
            elif role not in self.taken.roles:
                import difflib  # error path only; keeps the start of every sync fast

                known = sorted(self.taken.roles)
                close = difflib.get_close_matches(role, known, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                self.read.error(
                    path + (index,),
                    f"unknown role '{role}'; {hint}known roles: "
                    f"{', '.join(known) or 'none (roles/ is empty)'}",
                )
            else:
                result.append((index, role))
        return result

    def _gpu(self, value: Any, path: KeyPath) -> Gpu | None:
        if value is None or value is False:
            return None
        if value is True:
            return Gpu()
        if isinstance(value, int) and value >= 0:
            return Gpu(id=str(value))
        if isinstance(value, str) and value.isdigit():
            return Gpu(id=value)
        if isinstance(value, str) and _PCI.fullmatch(value):
            return Gpu(pci=value.lower())
        self.read.error(
            path,
            f"{value!r} is not a GPU choice; use true (any GPU), a GPU id like 0, "
            "or a PCI address like 0000:01:00.0",
        )
        return None

    def _profiles(self, data: Section, scope: DomainScope, gpu: Gpu | None) -> list[str]:
        """The profiles the machine names (defined in its domain), plus gpu when it asks."""
        used = []
        path = data.where("profiles")
        for index, profile in self.read.name_list(data.get("profiles"), path):
            if profile == DEFAULT_PROFILE:
                continue
            if profile not in scope.profiles and not (profile == GPU_PROFILE and gpu is not None):
                defined = ", ".join(sorted(scope.profiles)) or "none"
                hint = " or set gpu: true to get the standard one" if profile == GPU_PROFILE else ""
                self.read.error(
                    path + (index,),
                    f"profile '{profile}' is not defined in domain {scope.name} (defined: "
                    f"{defined}); add it under domains.{scope.name}.profiles{hint}",
                )
            else:
                used.append(profile)
        if gpu is not None and GPU_PROFILE not in used:
            used.append(GPU_PROFILE)
        return used

    def _vars(self, value: Any, path: KeyPath) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.read.error(path, f"must be a mapping of role variables, not {yaml_type(value)}")
            return {}
        result = {}
        for key, item in value.items():
            where = path + (str(key),)
            if not isinstance(key, str) or not _VARIABLE.fullmatch(key):
                self.read.error(
                    where, f"'{key}' is not an Ansible variable name; use letters, digits and '_'"
                )
            elif key in RESERVED_VARS:
                self.read.error(where, f"'{key}' is written by the generator; remove it from vars")
            elif self.read.plain_data(item, where):
                result[key] = item
        return result

    def _allow(self, value: Any, path: KeyPath, roles: list[str]) -> tuple[Allow, ...]:
        """``allow:``: service role or TCP port → machine names and IPv4 networks."""
        if value is None:
            return ()
        if not isinstance(value, dict):
            self.read.error(
                path, f"must be a mapping of role or port to sources, not {yaml_type(value)}"
            )
            return ()
        services = [r for r in roles if r in acl.SERVICE_ROLES]
        result = []
        for key, sources in value.items():
            where = path + (str(key),)
            role, port = "", None
            if isinstance(key, str) and key in services:
                role = key
            elif isinstance(key, int) and not isinstance(key, bool) and 1 <= key <= 65535:
                port = key
            else:
                served = ", ".join(services) or "none"
                self.read.error(
                    where,
                    f"'{key}' is neither a service role of this machine (it serves: {served}) "
                    "nor a TCP port 1–65535",
                )
                continue
            if not isinstance(sources, list) or not sources:
                self.read.error(
                    where,
                    "must be a non-empty list of machine names and IPv4 networks, "
                    "like [web2, 192.168.1.0/24]",
                )
                continue
            names = []
            for index, source in enumerate(sources):
                text, problem = acl.parse_source(source)
                if problem:
                    self.read.error(where + (index,), problem)
                else:
                    names.append(text)
            result.append(Allow(role, port, tuple(names)))
        return tuple(result)
