"""The content of each managed block, as plain data keyed by output path.

Variable names here are the contract in docs/architecture.md; the roles and
playbooks read exactly these.
"""

from __future__ import annotations

from typing import Any

from . import acl, addressing, cluster, front_door, secrets, wiring, wyoming_lan
from .schema import GPU_PROFILE, Domain, Infra, Machine
from .validate import Checked

CONNECTION = "homelab.aistack.incus"
PYTHON = "/usr/bin/python3"
ALL_GROUP = "aistack"


def _gpu_device_name(domain: Domain) -> str:
    profile = domain.profiles.get(GPU_PROFILE)
    if profile:
        for name, device in profile.devices.items():
            if device.get("type") == "gpu":
                return name
    return "gpu"


def domain_profiles(domain: Domain) -> dict[str, dict[str, Any]]:
    """The domain's profiles, plus a standard gpu profile when a machine asks for one."""
    profiles = {
        p.name: {
            "description": p.description,
            "config": dict(p.config),
            "devices": {k: dict(v) for k, v in p.devices.items()},
        }
        for p in domain.profiles.values()
    }
    if GPU_PROFILE not in profiles and any(m.gpu is not None for m in domain.machines):
        profiles[GPU_PROFILE] = {
            "description": "GPU passthrough with the NVIDIA runtime (added by aistack)",
            # Without nvidia.runtime the container sees the device but has no driver libraries.
            "config": {"nvidia.runtime": "true"},
            "devices": {"gpu": {"type": "gpu", "gputype": "physical"}},
        }
    return profiles


def _instance_devices(domain: Domain, machine: Machine) -> dict[str, dict[str, str]]:
    devices = {k: dict(v) for k, v in machine.devices.items()}
    gpu = machine.gpu
    if gpu is not None and (gpu.id or gpu.pci):
        # The profile asks for any GPU; a device of the same name on the instance
        # overrides it with the one GPU this machine wants.
        name = _gpu_device_name(domain)
        base = {"type": "gpu", "gputype": "physical"}
        if GPU_PROFILE in domain.profiles:
            base = dict(domain.profiles[GPU_PROFILE].devices.get(name, base))
        base.pop("id", None)
        base.pop("pci", None)
        base.update({"id": gpu.id} if gpu.id else {"pci": gpu.pci or ""})
        devices.setdefault(name, base)
    return devices


def all_vars(checked: Checked) -> dict[str, Any]:
    infra = checked.infra
    acls = network_acls(checked)
    s = infra.settings
    domains: dict[str, Any] = {}
    for domain in infra.domains:
        net = addressing.DomainNetwork.of(s.base_subnet, domain.subnet_id)
        domains[domain.name] = {
            "name": domain.name,
            "description": domain.description,
            "project": domain.name,
            "bridge": addressing.bridge_name(domain.name),
            "subnet": str(net.subnet),
            "gateway": str(net.gateway),
            "netmask_bits": net.subnet.prefixlen,
            "dhcp_range_start": str(net.dhcp_first),
            "dhcp_range_end": str(net.dhcp_last),
            "ephemeral": domain.ephemeral,
            "profiles": domain_profiles(domain),
            "machines": [m.name for m in domain.machines],
            "network_acl": acls.get(domain.name),
        }
    build = s.image_build
    extra: dict[str, Any] = {}
    mdns = wyoming_lan.mdns_services(infra)
    if mdns:
        # Written only when a Wyoming port is announced: other files stay as they were.
        extra["aistack_mdns_services"] = mdns
    if infra.cluster is not None:
        # Written only for a cluster: a one-host infra.yml keeps its files as they were.
        extra["aistack_cluster"] = cluster.as_vars(infra.cluster)
    return {
        "aistack_base_subnet": s.base_subnet,
        "aistack_gpu_policy": s.gpu_policy,
        "aistack_default_image": s.default_image,
        "aistack_ca_certificates": list(s.ca_certificates),
        "aistack_incus_remote": s.remote,
        "aistack_incus_remote_url": s.remote_url,
        "aistack_incus_client_cert": s.client_cert,
        "aistack_incus_client_key": s.client_key,
        "aistack_incus_server_cert": s.server_cert,
        "aistack_incus_remote_token": s.remote_token,
        "aistack_storage_pool": s.storage_pool,
        "aistack_storage_driver": s.storage_driver,
        "aistack_image_build": (
            {"alias": build.alias, "suite": build.suite, "mirror": build.mirror} if build else None
        ),
        "aistack_gpu_required": any(m.needs_gpu for m in infra.machines),
        "aistack_domains": domains,
        **extra,
    }


def domain_vars(infra: Infra, domain: Domain) -> dict[str, Any]:
    return {
        "ansible_connection": CONNECTION,
        "ansible_incus_project": domain.name,
        "ansible_incus_remote": infra.settings.remote,
        "ansible_python_interpreter": PYTHON,
        "aistack_domain": domain.name,
    }


def inventory(domain: Domain, door: front_door.FrontDoor | None = None) -> dict[str, Any]:
    groups: dict[str, Any] = {
        ALL_GROUP: {"children": {domain.name: {}}},
        domain.name: {"hosts": {m.name: {} for m in domain.machines}},
    }
    for machine in domain.machines:
        for role in machine.roles:
            groups.setdefault(role, {"hosts": {}})["hosts"][machine.name] = {}
        if door is not None and door.machine == machine.name:
            groups[front_door.ROLE] = {"hosts": {machine.name: {}}}
    return groups


def network_acls(checked: Checked) -> dict[str, dict[str, Any]]:
    """Domain name → the ACL of its bridge; empty when global.network_acls is false."""
    if not checked.infra.settings.network_acls:
        return {}
    wired = {name: w.providers for name, w in checked.wiring.items()}
    return {name: a.as_incus() for name, a in acl.build(checked.infra, wired).items()}


def host_vars(checked: Checked, domain: Domain, machine: Machine) -> dict[str, Any]:
    result: dict[str, Any] = {
        "aistack_instance": {
            "name": machine.name,
            "domain": domain.name,
            "project": domain.name,
            "description": machine.description,
            "type": machine.type,
            "ip": str(machine.ip),
            "image": machine.image,
            "profiles": list(machine.profiles),
            "config": dict(machine.config),
            "devices": _instance_devices(domain, machine),
            "ephemeral": machine.ephemeral,
            "gpu": machine.needs_gpu,
        },
        "aistack_roles": list(machine.roles),
    }
    if machine.target is not None:
        result["aistack_instance"]["target"] = machine.target
    result["aistack_instance"]["devices"].update(
        wiring.published(checked.infra, checked.wiring).get(machine.name, {})
    )
    door = checked.front_door
    if door is not None and door.machine == machine.name:
        result["aistack_instance"]["devices"].update(front_door.devices(door))
        result.update(front_door.role_vars(door))
    if machine.wyoming_lan is not None:
        result["aistack_instance"]["devices"].update(
            wyoming_lan.devices(machine, machine.wyoming_lan)
        )
        result.update(
            wyoming_lan.role_vars(machine, machine.wyoming_lan, _wyoming_sources(checked, machine))
        )
    result.update(secrets.generated(machine))
    wired = checked.wiring.get(machine.name)
    if wired:
        result.update({k: v for k, v in wired.variables.items() if k not in machine.vars})
    result.update(machine.vars)
    return result


def _wyoming_sources(checked: Checked, machine: Machine) -> list[str]:
    """The stack's own sources of Wyoming: the machine's domain subnet (the host's gateway
    address and its neighbours) and the machines and networks its ``allow:`` names for the
    Wyoming port; the bridge's ACL narrows them further."""
    base = checked.infra.settings.base_subnet
    net = addressing.DomainNetwork.of(base, _subnet_id(checked, machine))
    sources = [str(net.subnet)]
    port = wyoming_lan.wyoming_port(machine)
    by_name = {m.name: m for m in checked.infra.machines}
    for entry in machine.allow:
        if entry.port == port:
            for source in entry.sources:
                found = by_name.get(source)
                text = f"{found.ip}/32" if found is not None else source
                if text not in sources:
                    sources.append(text)
    return sources


def _subnet_id(checked: Checked, machine: Machine) -> int:
    return next(d.subnet_id for d in checked.infra.domains if d.name == machine.domain)


def render(checked: Checked) -> dict[str, dict[str, Any]]:
    """Output path (relative to the output directory) → managed block content."""
    infra = checked.infra
    files: dict[str, dict[str, Any]] = {"group_vars/all.yml": all_vars(checked)}
    if infra.cluster is not None:
        files[f"inventory/{cluster.INVENTORY_GROUP}.yml"] = cluster.inventory(infra.cluster)
    for domain in infra.domains:
        files[f"inventory/{domain.name}.yml"] = inventory(domain, checked.front_door)
        files[f"group_vars/{domain.name}.yml"] = domain_vars(infra, domain)
        for machine in domain.machines:
            files[f"host_vars/{machine.name}.yml"] = host_vars(checked, domain, machine)
    return files
