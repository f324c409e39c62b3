#!/usr/bin/python
# Copyright: aistack developers
# Apache License 2.0 (see galaxy.yml)
"""Ansible module: an Incus managed network (a bridge with its subnet, NAT and DHCP)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: incus_network
short_description: Manage an Incus network (bridge, subnet, NAT, DHCP range)
version_added: 0.1.0
description:
  - Creates, updates or removes one Incus managed network through the Incus REST API (pylxd).
  - Only the config keys given in O(config) are managed; keys Incus fills in by
    itself (for example C(ipv6.address) when not given) are left alone.
  - On an Incus cluster a network is defined on every member first (pending,
    C(?target=<member>)) and then created with its config, which Incus applies on
    all members, so that each member gets its own bridge with the same subnet. A
    network left pending by an interrupted run is completed.
  - Before creating or re-addressing a network, the module checks that its
    C(ipv4.address)/C(ipv6.address) subnet does not overlap the subnet of any
    other managed network in any project, and fails naming the other network.
author: aistack developers
options:
  name:
    description: Network name (an interface on the host, at most 15 characters).
    type: str
    required: true
  project:
    description:
      - Project the network lives in. Networks of projects without
        C(features.networks) live in V(default).
    type: str
    default: default
  type:
    description: Network type; only used on creation.
    type: str
    default: bridge
    choices: [bridge, macvlan, sriov, ovn, physical]
  description:
    description: Free-text description. Left unchanged when omitted.
    type: str
  config:
    description:
      - Network config, for example C(ipv4.address), C(ipv4.nat),
        C(ipv4.dhcp.ranges), C(ipv6.address).
      - Values are compared as strings; booleans become C(true)/C(false).
    type: dict
    default: {}
  state:
    description:
      - V(present) creates or updates; V(absent) removes.
      - Incus refuses to remove a network while it is in use.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - homelab.aistack.incus
"""

EXAMPLES = r"""
- name: Bridge of domain lab, NAT to the outside, DHCP above the static addresses
  homelab.aistack.incus_network:
    name: br-lab
    description: Domain lab
    config:
      ipv4.address: 10.100.10.1/24
      ipv4.nat: true
      ipv4.dhcp.ranges: 10.100.10.200-10.100.10.254
      ipv6.address: none

- name: Remove the bridge
  homelab.aistack.incus_network:
    name: br-lab
    state: absent
"""

RETURN = r"""
network:
  description: The network after the run (as it would be, in check mode); empty when absent.
  returned: always
  type: dict
  sample:
    name: br-lab
    type: bridge
    description: Domain lab
    config:
      ipv4.address: 10.100.10.1/24
      ipv4.nat: "true"
changes:
  description: Names of the fields that differed from the request.
  returned: always
  type: list
  elements: str
  sample: [config.ipv4.nat]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.homelab.aistack.plugins.module_utils.incus_api import (  # noqa: E402
    IncusError,
    connection_argument_spec,
    exit_with,
    network_of,
    run_module,
    stringify,
)

ADDRESS_KEYS = ("ipv4.address", "ipv6.address")


def _view(obj: dict | None) -> dict:
    if not obj:
        return {}
    return {
        "name": obj["name"],
        "type": obj.get("type", ""),
        "description": obj.get("description", ""),
        "config": dict(obj.get("config") or {}),
    }


def _create(api, name: str, project: str, body: dict, current: dict | None) -> None:
    """Create the network; on a cluster, first on each member, then the whole."""
    members = api.cluster_members()
    if members is not None:
        pending = set((current or {}).get("locations") or [])
        for member in members:
            if member in pending:
                continue
            try:
                api.post(
                    f"Defining Incus network '{name}' on cluster member {member}",
                    "networks",
                    {
                        "name": name,
                        "type": body["type"],
                        "description": body["description"],
                        "config": {},
                    },
                    project,
                    params={"target": member},
                )
            except IncusError as exc:
                # Defined there by an interrupted run (a server that does not list a
                # pending network's members answers so).
                if "already" not in str(exc):
                    raise
    api.post(f"Creating Incus network '{name}'", "networks", body, project)
    if members is not None:
        # The create that commits a cluster network may keep what the pending member
        # definitions held; set what differs, so that the next run finds nothing to do.
        created = api.get(f"networks/{name}", project) or {}
        config = dict(created.get("config") or {})
        if created.get("description", "") != body["description"] or any(
            config.get(k) != v for k, v in body["config"].items()
        ):
            config.update(body["config"])
            api.put(
                f"Configuring Incus network '{name}'",
                f"networks/{name}",
                {"description": body["description"], "config": config},
                project,
            )


def _check_overlap(api, name: str, project: str, config: dict) -> None:
    mine = [(key, network_of(config.get(key, ""))) for key in ADDRESS_KEYS]
    mine = [(key, net) for key, net in mine if net is not None]
    if not mine:
        return
    for other in api.managed_networks():
        if other["name"] == name and other.get("project", "default") == project:
            continue
        for key, net in mine:
            theirs = network_of((other.get("config") or {}).get(key, ""))
            if theirs is not None and theirs.version == net.version and theirs.overlaps(net):
                raise IncusError(
                    f"Network '{name}': {key} {config[key]} overlaps subnet {theirs} of "
                    f"network '{other['name']}' (project {other.get('project', 'default')}); "
                    "pick a subnet no other network uses."
                )


def main() -> None:
    spec = connection_argument_spec()
    spec.update(
        name={"type": "str", "required": True},
        project={"type": "str", "default": "default"},
        type={
            "type": "str",
            "default": "bridge",
            "choices": ["bridge", "macvlan", "sriov", "ovn", "physical"],
        },
        description={"type": "str"},
        config={"type": "dict", "default": {}},
        state={"type": "str", "choices": ["present", "absent"], "default": "present"},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params

    def body(api) -> None:
        name, project = p["name"], p["project"]
        if p["state"] == "absent" and not api.project_exists(project):
            module.exit_json(changed=False, network={}, changes=[])
        api.require_project(project)
        path = f"networks/{name}"
        current = api.get(path, project)
        if current is not None and current.get("status") == "Pending":
            # Defined on some members by an interrupted run, never created: finish it.
            current_pending, current = current, None
        else:
            current_pending = None
        if current is not None and not current.get("managed"):
            raise IncusError(
                f"'{name}' is an unmanaged host interface, not an Incus network; "
                "choose another name."
            )
        before = _view(current)
        if p["state"] == "absent":
            if current_pending is not None:
                if not module.check_mode:
                    api.delete(f"Removing pending Incus network '{name}'", path, project)
                exit_with(module, "network", {}, {}, ["state"])
            if current is None:
                module.exit_json(changed=False, network={}, changes=[])
            if not module.check_mode:
                api.delete(f"Removing Incus network '{name}'", path, project)
            exit_with(module, "network", before, {}, ["state"])

        wanted = stringify(p["config"])
        if current is None:
            _check_overlap(api, name, project, wanted)
            after = {
                "name": name,
                "type": p["type"],
                "description": p["description"] or "",
                "config": wanted,
            }
            if not module.check_mode:
                body = {k: after[k] for k in ("name", "type", "description", "config")}
                _create(api, name, project, body, current_pending)
                after = _view(api.get(path, project))
            exit_with(module, "network", {}, after, ["state"])

        changes: list[str] = []
        config = dict(before["config"])
        for key, value in wanted.items():
            if config.get(key) != value:
                changes.append(f"config.{key}")
                config[key] = value
        if any(f"config.{key}" in changes for key in ADDRESS_KEYS):
            _check_overlap(api, name, project, config)
        description = before["description"]
        if p["description"] is not None and p["description"] != description:
            changes.append("description")
            description = p["description"]
        after = dict(before, description=description, config=config)
        if changes and not module.check_mode:
            api.put(
                f"Updating Incus network '{name}' ({', '.join(changes)})",
                path,
                {"description": description, "config": config},
                project,
            )
            after = _view(api.get(path, project))
        exit_with(module, "network", before, after, changes)

    run_module(module, body)


if __name__ == "__main__":
    main()
