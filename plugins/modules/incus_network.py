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
  - Incus refuses to remove a network while it is in use.
  - O(config) holds network keys such as C(ipv4.address), C(ipv4.nat),
    C(ipv4.dhcp.ranges) or C(ipv6.address); only the keys given are managed.
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
extends_documentation_fragment:
  - homelab.aistack.incus
  - homelab.aistack.incus.config
  - homelab.aistack.incus.object
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
  description: >-
    The network after the run (in check mode, as it would be) - C(name), C(type),
    C(description), C(config); empty when absent.
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
  description: >-
    C(config.KEY) for each requested config key that differed, C(description), or C(state) when
    the network was created or removed.
  returned: always
  type: list
  elements: str
  sample: [config.ipv4.nat]
"""

from ansible_collections.homelab.aistack.plugins.module_utils.incus_api import (  # noqa: E402
    IncusError,
    network_of,
    stringify,
)
from ansible_collections.homelab.aistack.plugins.module_utils.incus_reconcile import (  # noqa: E402
    Reconciler,
    description_change,
    merge_config,
)

ADDRESS_KEYS = ("ipv4.address", "ipv6.address")


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


class Network(Reconciler):
    kind = "network"
    noun = "Incus network"
    shown = {"type": "", "description": "", "config": {}}
    collection = "networks"
    # Defined on some cluster members by an interrupted run, never created.
    pending: dict | None = None

    def read(self) -> dict | None:
        current = super().read()
        if current is not None and current.get("status") == "Pending":
            self.pending, current = current, None
        if current is not None and not current.get("managed"):
            raise IncusError(
                f"'{self.name}' is an unmanaged host interface, not an Incus network; "
                "choose another name."
            )
        return current

    def absent(self, current: dict | None) -> None:
        if current is None and self.pending is not None:
            if not self.check:
                self.api.delete(f"Removing pending {self.label}", self.path, self.project)
            self.changes.append("state")
            self.finish({}, {})
        super().absent(current)

    def new(self) -> dict:
        config = stringify(self.p["config"])
        _check_overlap(self.api, self.name, self.project, config)
        return {
            "name": self.name,
            "type": self.p["type"],
            "description": self.p["description"] or "",
            "config": config,
        }

    def create(self, body: dict) -> None:
        """On a cluster, define the network on each member first, then create it."""
        members = self.api.cluster_members()
        if members is not None:
            self.define_on_members(members, body)
        super().create(body)
        if members is not None:
            self.settle(body)

    def define_on_members(self, members: list[str], body: dict) -> None:
        done = set((self.pending or {}).get("locations") or [])
        for member in members:
            if member in done:
                continue
            try:
                self.api.post(
                    f"Defining {self.label} on cluster member {member}",
                    "networks",
                    {
                        "name": self.name,
                        "type": body["type"],
                        "description": body["description"],
                        "config": {},
                    },
                    self.project,
                    params={"target": member},
                )
            except IncusError as exc:
                # Defined there by an interrupted run (a server that does not list a
                # pending network's members answers so).
                if "already" not in str(exc):
                    raise

    def settle(self, body: dict) -> None:
        """The create that commits a cluster network may keep what the pending member
        definitions held; set what differs, so that the next run finds nothing to do."""
        created = self.read() or {}
        config = dict(created.get("config") or {})
        if created.get("description", "") != body["description"] or any(
            config.get(k) != v for k, v in body["config"].items()
        ):
            config.update(body["config"])
            self.api.put(
                f"Configuring {self.label}",
                self.path,
                {"description": body["description"], "config": config},
                self.project,
            )

    def update(self, current: dict, before: dict) -> tuple[dict, dict, list[str]]:
        changes: list[str] = []
        config = merge_config(before["config"], stringify(self.p["config"]), changes)
        if any(f"config.{key}" in changes for key in ADDRESS_KEYS):
            _check_overlap(self.api, self.name, self.project, config)
        description = description_change(self.p, before, changes)
        after = dict(before, description=description, config=config)
        return after, {"description": description, "config": config}, changes


def main() -> None:
    Network.execute(
        type={
            "type": "str",
            "default": "bridge",
            "choices": ["bridge", "macvlan", "sriov", "ovn", "physical"],
        },
        config={"type": "dict", "default": {}},
    )


if __name__ == "__main__":
    main()
