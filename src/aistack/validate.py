"""Turn a parsed infra.yml into the typed model, collecting every problem on the way.

Nothing stops at the first error: each check records an Issue and carries on
with what it can, so one run of `aistack validate` lists everything to fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address
from pathlib import Path
from typing import Any

from . import acl, addressing, cluster, front_door, wiring
from .errors import AistackError, Issue
from .loader import Document, KeyPath, Vault, format_path
from .remote import remote_name_ok, remote_url_problem, token_fingerprint
from .schema import (
    DEFAULT_PROFILE,
    GPU_POLICIES,
    GPU_PROFILE,
    HOST_ONLY_ROLES,
    MACHINE_TYPES,
    RESERVED_VARS,
    SECTIONS,
    Allow,
    Domain,
    GlobalSettings,
    Gpu,
    ImageBuild,
    Infra,
    Machine,
    Profile,
)

_PCI = re.compile(r"^(?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CONFIG_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")
_IMAGE = re.compile(r"^[^:\s]+:\S+$")
_RESERVED_GROUPS = ("aistack", "all", "ungrouped", cluster.INVENTORY_GROUP)


@dataclass(frozen=True)
class Checked:
    """A valid infra.yml: the model plus the service endpoints derived from roles."""

    infra: Infra
    wiring: dict[str, wiring.Wiring]
    front_door: front_door.FrontDoor | None = None


def yaml_type(value: object) -> str:
    names = {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "empty (null)",
        Vault: "a !vault value (allowed only in a machine's vars)",
    }
    return names.get(type(value), type(value).__name__)


class _Checker:
    def __init__(self, doc: Document, roles: Iterable[str], base_dir: Path) -> None:
        self.doc = doc
        self.roles = frozenset(roles) - HOST_ONLY_ROLES
        self.base_dir = base_dir
        self.issues: list[Issue] = []
        # Set when a domain or machine could not be built; wiring checks would
        # then report services as missing that are only unreadable.
        self.incomplete = False
        self.base_subnet_invalid = False
        self.domain_names: set[str] = set()

    # -- helpers -----------------------------------------------------------
    def error(self, path: KeyPath, message: str) -> None:
        self.issues.append(self.doc.issue(path, message))

    def section(self, value: Any, path: KeyPath, name: str) -> dict[str, Any] | None:
        """Check that ``value`` is a mapping with only the keys of section ``name``."""
        fields = SECTIONS[name]
        if value is None:
            value = {}
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping, not {yaml_type(value)}")
            return None
        allowed = [f.name for f in fields]
        for key in value:
            if key not in allowed:
                self.error(path + (str(key),), _unknown_key(str(key), allowed))
        for f in fields:
            if f.required and value.get(f.name) is None:
                self.error(path + (f.name,), f"is required; add {f.name} ({f.kind}) here")
        return {k: v for k, v in value.items() if k in allowed}

    def string(self, value: Any, path: KeyPath, default: str | None = None) -> str | None:
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            self.error(path, f"must be a string, not {yaml_type(value)}")
            return default
        return str(value)

    def boolean(self, value: Any, path: KeyPath, default: bool) -> bool:
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(path, f"must be true or false, not {value!r}")
            return default
        return value

    def choice(self, value: Any, path: KeyPath, choices: tuple[str, ...], default: str) -> str:
        if value is None:
            return default
        if value not in choices:
            self.error(path, f"{value!r} is not one of: {', '.join(choices)}")
            return default
        return str(value)

    def name_list(self, value: Any, path: KeyPath) -> list[tuple[int, str]]:
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(path, f"must be a list of names, like [a, b], not {yaml_type(value)}")
            return []
        names: list[tuple[int, str]] = []
        seen: set[str] = set()
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.error(path + (index,), f"must be a name, not {yaml_type(item)}")
            elif item in seen:
                self.error(path + (index,), f"'{item}' is listed twice; remove one")
            else:
                seen.add(item)
                names.append((index, item))
        return names

    def config(self, value: Any, path: KeyPath) -> dict[str, str]:
        """Incus config: string keys, scalar values; values are sent to Incus as strings."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping of Incus config keys, not {yaml_type(value)}")
            return {}
        result: dict[str, str] = {}
        for key, item in value.items():
            where = path + (str(key),)
            if not isinstance(key, str) or not _CONFIG_KEY.fullmatch(key):
                self.error(where, f"'{key}' is not an Incus config key (like limits.memory)")
            elif isinstance(item, dict | list) or item is None:
                self.error(where, f"must be a single value, not {yaml_type(item)}")
            else:
                result[key] = _incus_string(item)
        return result

    def devices(self, value: Any, path: KeyPath) -> dict[str, dict[str, str]]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping of device name to device, not {yaml_type(value)}")
            return {}
        result: dict[str, dict[str, str]] = {}
        for name, device in value.items():
            where = path + (str(name),)
            if not isinstance(name, str) or not _PROFILE_NAME.fullmatch(name):
                self.error(where, f"'{name}' is not a usable device name")
                continue
            if not isinstance(device, dict):
                self.error(
                    where, f"must be a mapping with at least 'type', not {yaml_type(device)}"
                )
                continue
            if "type" not in device:
                self.error(where, "has no 'type'; add one, like type: disk, nic or gpu")
            result[name] = self.config(device, where)
        return result

    # -- sections ----------------------------------------------------------
    def settings(self, value: Any) -> GlobalSettings:
        path: KeyPath = ("global",)
        data = self.section(value, path, "global") or {}
        base = data.get("base_subnet")
        base_ok = base is not None and addressing.base_subnet_problem(base) is None
        self.base_subnet_invalid = not base_ok
        if base is not None and not base_ok:
            self.error(path + ("base_subnet",), addressing.base_subnet_problem(base) or "")
        image_build = None
        if data.get("image_build") is not None:
            build = self.section(data["image_build"], path + ("image_build",), "image_build")
            if build is not None:
                defaults = {f.name: f.default for f in SECTIONS["image_build"]}
                image_build = ImageBuild(
                    **{
                        k: self.string(build.get(k), path + ("image_build", k), defaults[k])
                        or defaults[k]
                        for k in defaults
                    }
                )
        default_image = self.image(data.get("default_image"), path + ("default_image",))
        remote = self.remote_name(data.get("remote"), path + ("remote",))
        cert_given = data.get("client_cert") is not None
        key_given = data.get("client_key") is not None
        if remote != "local" and cert_given != key_given:
            given, missing = (("client_cert", "client_key") if cert_given
                              else ("client_key", "client_cert"))
            self.error(path + (missing,), f"{given} is set, but {missing} is not; give both "
                       "(the pair the remote trusts), or neither to have one made in "
                       ".aistack/incus-client/")
        return GlobalSettings(
            base_subnet=str(base) if base_ok else "10.100",
            gpu_policy=self.choice(
                data.get("gpu_policy"), path + ("gpu_policy",), GPU_POLICIES, "exclusive"
            ),
            default_image=default_image or "images:debian/12",
            image_build=image_build,
            ca_certificates=self.ca_certificates(
                data.get("ca_certificates"), path + ("ca_certificates",)
            ),
            remote=remote,
            remote_url=self.remote_url(data.get("remote_url"), path + ("remote_url",), remote),
            client_cert=self.existing_file(data.get("client_cert"), path + ("client_cert",)),
            client_key=self.existing_file(data.get("client_key"), path + ("client_key",)),
            server_cert=self.existing_file(data.get("server_cert"), path + ("server_cert",)),
            remote_token=self.remote_token(data.get("remote_token"), path + ("remote_token",)),
            storage_pool=self.string(data.get("storage_pool"), path + ("storage_pool",), "default")
            or "default",
            storage_driver=self.string(
                data.get("storage_driver"), path + ("storage_driver",), "dir"
            )
            or "dir",
            network_acls=self.boolean(
                data.get("network_acls"), path + ("network_acls",), default=True
            ),
        )

    def image(self, value: Any, path: KeyPath) -> str | None:
        text = self.string(value, path)
        if text is not None and not _IMAGE.fullmatch(text):
            self.error(
                path,
                f"'{text}' names no remote; write <remote>:<alias>, like "
                "images:debian/12 or local:aistack/debian-12",
            )
            return None
        return text

    def remote_name(self, value: Any, path: KeyPath) -> str:
        text = self.string(value, path, "local") or "local"
        # The name becomes a remote of the Incus client (<name>:<instance>): no ':' or '/'.
        if not remote_name_ok(text):
            self.error(path, f"'{text}' cannot name an Incus remote; use letters, digits, "
                       "'-', '_' and '.', like gpu-box")
            return "local"
        return text

    def remote_url(self, value: Any, path: KeyPath, remote: str) -> str | None:
        text = self.string(value, path)
        # The project writes the remote into the Incus client from this address (the
        # connection plugin needs it there), so a remote other than "local" needs it.
        if text is None and remote != "local":
            self.error(
                path,
                f"remote is '{remote}', but remote_url is not set; give the daemon's address "
                "(https://host:8443, or unix:/path/to/unix.socket) or set remote: local",
            )
            return None
        if text is None:
            return None
        problem = remote_url_problem(text)
        if problem:
            self.error(path, problem)
            return None
        return text

    def remote_token(self, value: Any, path: KeyPath) -> str | None:
        text = self.string(value, path)
        if text is not None and token_fingerprint(text) is None:
            self.error(path, "is not an Incus trust token; paste the whole token that "
                       "`incus config trust add <client name>` printed on the remote")
            return None
        return text

    def existing_file(self, value: Any, path: KeyPath) -> str | None:
        text = self.string(value, path)
        if text is None:
            return None
        resolved = (self.base_dir / text).resolve() if not Path(text).is_absolute() else Path(text)
        if not resolved.is_file():
            self.error(
                path,
                f"{resolved} does not exist on this host; give the path of an "
                "existing file (relative paths start at infra.yml's directory)",
            )
            return None
        return str(resolved)

    def ca_certificates(self, value: Any, path: KeyPath) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(path, f"must be a list of PEM file paths, not {yaml_type(value)}")
            return ()
        found = [self.existing_file(item, path + (i,)) for i, item in enumerate(value)]
        return tuple(dict.fromkeys(p for p in found if p))

    def domains(self, value: Any, settings: GlobalSettings) -> tuple[Domain, ...]:
        path: KeyPath = ("domains",)
        if value is None:
            return ()
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping of domain name to domain, not {yaml_type(value)}")
            return ()
        if not value:
            self.error(path, "defines no domain; add at least one, like lab: {subnet_id: 10}")
        self.domain_names = {str(name) for name in value}
        subnet_owner: dict[int, str] = {}
        machine_owner: dict[str, str] = {}
        ip_owner: dict[IPv4Address, str] = {}
        result = []
        for name, body in value.items():
            domain = self.domain(str(name), body, settings, subnet_owner, machine_owner, ip_owner)
            if domain is None:
                self.incomplete = True
            else:
                result.append(domain)
        return tuple(result)

    def domain_name(self, name: str, path: KeyPath) -> bool:
        problem = addressing.label_problem(name)
        if problem is None and len(name) > addressing.MAX_DOMAIN_NAME:
            bridge = addressing.bridge_name(name)
            problem = (
                f"'{name}' makes the bridge name '{bridge}' {len(bridge)} characters long; "
                f"Linux allows {addressing.MAX_BRIDGE_NAME}, so use a domain name of at "
                f"most {addressing.MAX_DOMAIN_NAME} characters"
            )
        if problem is None and name in _RESERVED_GROUPS:
            problem = f"'{name}' is an Ansible group the generator uses; choose another name"
        if problem:
            self.error(path, problem)
        return problem is None

    def domain(
        self,
        name: str,
        body: Any,
        settings: GlobalSettings,
        subnet_owner: dict[int, str],
        machine_owner: dict[str, str],
        ip_owner: dict[IPv4Address, str],
    ) -> Domain | None:
        path: KeyPath = ("domains", name)
        name_ok = self.domain_name(name, path)
        data = self.section(body, path, "domain")
        if data is None:
            return None
        subnet_id = data.get("subnet_id")
        network = None
        if subnet_id is not None:
            where = path + ("subnet_id",)
            if isinstance(subnet_id, bool) or not isinstance(subnet_id, int):
                self.error(
                    where, f"must be a whole number 0–255 (the third octet), not {subnet_id!r}"
                )
            elif not 0 <= subnet_id <= 255:
                self.error(where, f"{subnet_id} is out of range; the third octet must be 0–255")
            elif subnet_id in subnet_owner:
                self.error(
                    where,
                    f"{subnet_id} is already used by domain {subnet_owner[subnet_id]}; "
                    "give every domain its own subnet_id",
                )
            elif not self.base_subnet_invalid:
                # With a broken base_subnet every address check would be noise.
                subnet_owner[subnet_id] = name
                network = addressing.DomainNetwork.of(settings.base_subnet, subnet_id)
        ephemeral = self.boolean(data.get("ephemeral"), path + ("ephemeral",), False)
        profiles = self.profiles(data.get("profiles"), path + ("profiles",))
        machines_value = data.get("machines")
        machines: list[Machine] = []
        if machines_value is not None and not isinstance(machines_value, dict):
            self.error(
                path + ("machines",),
                f"must be a mapping of machine name to machine, not {yaml_type(machines_value)}",
            )
        elif machines_value:
            for mname, mbody in machines_value.items():
                machine = self.machine(
                    name,
                    str(mname),
                    mbody,
                    settings,
                    network,
                    profiles,
                    ephemeral,
                    machine_owner,
                    ip_owner,
                )
                if machine is None:
                    self.incomplete = True
                else:
                    machines.append(machine)
        if not name_ok or network is None:
            return None
        return Domain(
            name=name,
            description=self.string(data.get("description"), path + ("description",), "") or "",
            subnet_id=int(subnet_id),
            ephemeral=ephemeral,
            profiles=profiles,
            machines=tuple(machines),
        )

    def profiles(self, value: Any, path: KeyPath) -> dict[str, Profile]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(
                path, f"must be a mapping of profile name to profile, not {yaml_type(value)}"
            )
            return {}
        result = {}
        for name, body in value.items():
            where = path + (str(name),)
            if not isinstance(name, str) or not _PROFILE_NAME.fullmatch(name):
                self.error(
                    where,
                    f"'{name}' is not a usable profile name; use letters, digits, '-', '_' and '.'",
                )
                continue
            data = self.section(body, where, "profile")
            if data is None:
                continue
            result[name] = Profile(
                name=name,
                description=self.string(data.get("description"), where + ("description",), "")
                or "",
                config=self.config(data.get("config"), where + ("config",)),
                devices=self.devices(data.get("devices"), where + ("devices",)),
            )
        return result

    def machine(
        self,
        domain: str,
        name: str,
        body: Any,
        settings: GlobalSettings,
        network: addressing.DomainNetwork | None,
        profiles: dict[str, Profile],
        domain_ephemeral: bool,
        machine_owner: dict[str, str],
        ip_owner: dict[IPv4Address, str],
    ) -> Machine | None:
        path: KeyPath = ("domains", domain, "machines", name)
        problem = addressing.label_problem(name)
        if problem is None and name in machine_owner:
            problem = (
                f"machine name '{name}' is already used in domain {machine_owner[name]}; "
                "instance names must be unique across all domains"
            )
        if problem is None and name in self.domain_names:
            problem = (
                f"'{name}' is also the name of a domain, which is an Ansible group; "
                "choose another machine name"
            )
        if problem is None and name in _RESERVED_GROUPS + tuple(self.roles):
            problem = f"'{name}' is also an Ansible group name; choose another machine name"
        if problem:
            self.error(path, problem)
        else:
            machine_owner[name] = domain
        data = self.section(body, path, "machine")
        if data is None:
            return None
        ip = self.ip(data.get("ip"), path + ("ip",), domain, network, ip_owner, name)
        roles = self.machine_roles(data.get("roles"), path + ("roles",))
        gpu = self.gpu(data.get("gpu"), path + ("gpu",))
        devices = self.devices(data.get("devices"), path + ("devices",))
        used = []
        for index, profile in self.name_list(data.get("profiles"), path + ("profiles",)):
            if profile == DEFAULT_PROFILE:
                continue
            if profile not in profiles and not (profile == GPU_PROFILE and gpu is not None):
                defined = ", ".join(sorted(profiles)) or "none"
                hint = " or set gpu: true to get the standard one" if profile == GPU_PROFILE else ""
                self.error(
                    path + ("profiles", index),
                    f"profile '{profile}' is not defined in domain {domain} (defined: "
                    f"{defined}); add it under domains.{domain}.profiles{hint}",
                )
            else:
                used.append(profile)
        if gpu is not None and GPU_PROFILE not in used:
            used.append(GPU_PROFILE)
        needs_gpu = (
            gpu is not None
            or _has_gpu(devices)
            or any(_has_gpu(profiles[p].devices) for p in used if p in profiles)
        )
        vars_ = self.machine_vars(data.get("vars"), path + ("vars",))
        wiring_data = self.section(data.get("wiring"), path + ("wiring",), "wiring") or {}
        wiring_choice = {}
        for key, target in wiring_data.items():
            text = self.string(target, path + ("wiring", key))
            if text is not None:
                wiring_choice[key] = text
        allow = self.allow(data.get("allow"), path + ("allow",), [r for _, r in roles])
        machine_type = self.choice(data.get("type"), path + ("type",), MACHINE_TYPES, "lxc")
        if gpu is not None and machine_type == "vm":
            self.error(
                path + ("gpu",),
                "gpu: uses the NVIDIA container runtime, which a vm "
                "cannot use; pass the GPU to the vm under devices "
                "(type: gpu, gputype: physical, pci: ...) instead",
            )
        if ip is None or problem:
            return None
        return Machine(
            name=name,
            domain=domain,
            description=self.string(data.get("description"), path + ("description",), "") or "",
            type=machine_type,
            ip=ip,
            gpu=gpu,
            profiles=(DEFAULT_PROFILE, *used),
            roles=tuple(r for _, r in roles),
            config=self.config(data.get("config"), path + ("config",)),
            devices=devices,
            image=self.image(data.get("image"), path + ("image",)) or settings.default_image,
            ephemeral=self.boolean(data.get("ephemeral"), path + ("ephemeral",), domain_ephemeral),
            vars=vars_,
            wiring=wiring_choice,
            needs_gpu=needs_gpu,
            allow=allow,
            target=self.string(data.get("target"), path + ("target",)),
        )

    def ip(
        self,
        value: Any,
        path: KeyPath,
        domain: str,
        network: addressing.DomainNetwork | None,
        ip_owner: dict[IPv4Address, str],
        machine: str,
    ) -> IPv4Address | None:
        if value is None:
            return None  # reported as a missing required key
        try:
            ip = IPv4Address(str(value).strip())
        except (AddressValueError, ValueError):
            self.error(path, f"'{value}' is not an IPv4 address; write it like 10.100.10.10")
            return None
        if network is not None:
            problem = network.ip_problem(ip, domain)
            if problem:
                self.error(path, problem)
                return None
        if ip in ip_owner:
            self.error(
                path,
                f"{ip} is already the address of machine {ip_owner[ip]}; "
                "give every machine its own address",
            )
            return None
        ip_owner[ip] = machine
        return ip

    def machine_roles(self, value: Any, path: KeyPath) -> list[tuple[int, str]]:
        result = []
        for index, role in self.name_list(value, path):
            if role in HOST_ONLY_ROLES:
                self.error(
                    path + (index,),
                    f"role '{role}' runs on the Incus host, not in a "
                    "machine; remove it from this list",
                )
            elif role not in self.roles:
                import difflib  # error path only; keeps the start of every sync fast

                known = sorted(self.roles)
                close = difflib.get_close_matches(role, known, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                self.error(
                    path + (index,),
                    f"unknown role '{role}'; {hint}known roles: "
                    f"{', '.join(known) or 'none (roles/ is empty)'}",
                )
            else:
                result.append((index, role))
        return result

    def gpu(self, value: Any, path: KeyPath) -> Gpu | None:
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
        self.error(
            path,
            f"{value!r} is not a GPU choice; use true (any GPU), a GPU id like 0, "
            "or a PCI address like 0000:01:00.0",
        )
        return None

    def machine_vars(self, value: Any, path: KeyPath) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping of role variables, not {yaml_type(value)}")
            return {}
        result = {}
        for key, item in value.items():
            where = path + (str(key),)
            if not isinstance(key, str) or not _VARIABLE.fullmatch(key):
                self.error(
                    where, f"'{key}' is not an Ansible variable name; use letters, digits and '_'"
                )
            elif key in RESERVED_VARS:
                self.error(where, f"'{key}' is written by the generator; remove it from vars")
            elif self.plain_data(item, where):
                result[key] = item
        return result

    def allow(self, value: Any, path: KeyPath, roles: list[str]) -> tuple[Allow, ...]:
        """``allow:``: service role or TCP port → machine names and IPv4 networks."""
        if value is None:
            return ()
        if not isinstance(value, dict):
            self.error(
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
                self.error(
                    where,
                    f"'{key}' is neither a service role of this machine (it serves: {served}) "
                    "nor a TCP port 1–65535",
                )
                continue
            if not isinstance(sources, list) or not sources:
                self.error(
                    where,
                    "must be a non-empty list of machine names and IPv4 networks, "
                    "like [web2, 192.168.1.0/24]",
                )
                continue
            names = []
            for index, source in enumerate(sources):
                text, problem = acl.parse_source(source)
                if problem:
                    self.error(where + (index,), problem)
                else:
                    names.append(text)
            result.append(Allow(role, port, tuple(names)))
        return tuple(result)

    def allow_sources(self, infra: Infra) -> None:
        """Machine names in ``allow:`` must name machines; checked once all are known."""
        known = {m.name for m in infra.machines}
        for machine in infra.machines:
            for entry in machine.allow:
                key = entry.role or str(entry.port)
                for index, source in enumerate(entry.sources):
                    if "/" not in source and source not in known:
                        self.error(
                            (
                                "domains",
                                machine.domain,
                                "machines",
                                machine.name,
                                "allow",
                                key,
                                index,
                            ),
                            f"'{source}' is neither a machine of infra.yml nor an IPv4 "
                            "address or network; name a machine or write a CIDR "
                            "like 192.168.1.0/24",
                        )

    def plain_data(self, value: Any, path: KeyPath) -> bool:
        """Role variables are copied verbatim, so they must be data YAML writes back as is."""
        if isinstance(value, dict):
            return all([self.plain_data(v, path + (str(k),)) for k, v in value.items()])
        if isinstance(value, list):
            return all([self.plain_data(v, path + (i,)) for i, v in enumerate(value)])
        if value is None or isinstance(value, str | int | float | bool | Vault):
            return True
        self.error(
            path,
            f"{value!r} is {yaml_type(value)}, which is not copied into host_vars; "
            "quote it to make it a string",
        )
        return False

    def front_door(
        self, value: Any, infra: Infra, resolved: dict[str, wiring.Wiring]
    ) -> front_door.FrontDoor | None:
        """The front door (front_door.py holds its rules); on unless the file turns it off."""
        if isinstance(value, dict):
            self.section(value, ("front_door",), "front_door")
            if isinstance(value.get("certificate"), dict):
                self.section(
                    value["certificate"], ("front_door", "certificate"), "front_door_certificate"
                )
        stt_host = {
            name: w.variables[wiring.STT_HOST]
            for name, w in resolved.items()
            if wiring.STT_HOST in w.variables
        }
        return front_door.check(value, infra, stt_host, self.error, self.existing_file)

    def gpu_policy(self, infra: Infra) -> None:
        if infra.settings.gpu_policy != "exclusive":
            return
        holders = [m for m in infra.machines if m.needs_gpu]
        first = holders[0] if holders else None
        for machine in holders[1:]:
            assert first is not None
            path = (
                "domains",
                machine.domain,
                "machines",
                machine.name,
                "gpu" if machine.gpu is not None else "devices",
            )
            if machine.gpu is None and not _has_gpu(machine.devices):
                path = path[:-1] + ("profiles",)
            self.error(
                path,
                f"machine {machine.name} needs a GPU but gpu_policy is exclusive "
                f"and machine {first.name} already holds one; give a GPU to one "
                "machine only, or set global.gpu_policy: shared",
            )


def _has_gpu(devices: dict[str, dict[str, str]]) -> bool:
    return any(device.get("type") == "gpu" for device in devices.values())


def _incus_string(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _unknown_key(key: str, allowed: list[str]) -> str:
    import difflib  # error path only

    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key '{key}'; did you mean '{close[0]}'?"
    return f"unknown key '{key}'; allowed keys: {', '.join(allowed)}"


def check(doc: Document, roles: Iterable[str], base_dir: Path) -> Checked:
    """Validate a parsed infra.yml; raise AistackError listing every problem."""
    checker = _Checker(doc, roles, base_dir)
    checker.issues.extend(doc.issues)
    data = doc.data
    if data is None:
        raise AistackError(
            [
                doc.issue(
                    (),
                    "the file is empty; it needs the keys global and "
                    "domains (see docs/infra-yml.md)",
                )
            ]
        )
    if not isinstance(data, dict):
        raise AistackError(
            [
                doc.issue(
                    (),
                    f"the file holds {yaml_type(data)}, but it must be a "
                    "mapping with the keys global and domains",
                )
            ]
        )
    top = checker.section(data, (), "top") or {}
    settings = checker.settings(top.get("global"))
    domains = checker.domains(top.get("domains"), settings)
    machines = tuple(m for d in domains for m in d.machines)
    reserved = {d.name for d in domains} | {m.name for m in machines} | set(checker.roles)
    reserved |= set(_RESERVED_GROUPS)
    members = cluster.check(
        top.get("cluster"), reserved, settings.base_subnet, settings.remote, checker.error
    )
    infra = Infra(settings=settings, domains=domains, machines=machines, cluster=members)
    if members is not None or top.get("cluster") is None:
        cluster.check_targets(infra, checker.error)
    checker.gpu_policy(infra)
    checker.allow_sources(infra)
    resolved: dict[str, wiring.Wiring] = {}
    if not checker.incomplete:
        resolved, problems = wiring.resolve(infra)
        for path, message in problems:
            checker.error(path, message)
    door = None
    if not checker.incomplete:
        door = checker.front_door(top.get("front_door"), infra, resolved)
    if checker.issues:
        raise AistackError(checker.issues)
    return Checked(infra=infra, wiring=resolved, front_door=door)


__all__ = ["Checked", "check", "format_path"]
