#!/usr/bin/python
# Copyright: aistack developers
# Apache License 2.0 (see galaxy.yml)
"""Ansible module: an Incus network ACL (ingress and egress rules)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: incus_network_acl
short_description: Manage an Incus network ACL (its ingress and egress rules)
version_added: 0.1.0
description:
  - Creates, updates or removes one Incus network ACL through the Incus REST API (pylxd).
  - An ACL is declared in full; O(ingress) and O(egress) replace the rules it
    holds, so a rule removed from the request is removed from the ACL.
  - Rules are compared as sets of their fields (Incus orders rules by action,
    not by their place in the list), with C(state) defaulting to V(enabled).
  - Assign the ACL with C(security.acls) on a network or on an instance's NIC
    device. On a bridge, ACLs on NIC devices need Incus's nftables firewall driver.
  - Incus refuses to remove an ACL while a network or NIC uses it.
author: aistack developers
options:
  name:
    description: ACL name (letters, digits and dashes, at most 63 characters).
    type: str
    required: true
  project:
    description:
      - Project the ACL lives in. ACLs follow the networks, so for a project
        without C(features.networks) this is V(default).
    type: str
    default: default
  ingress:
    description:
      - Rules for traffic towards the NIC; each a mapping of Incus rule fields
        (C(action), C(source), C(destination), C(protocol), C(destination_port), ...).
      - C(source), C(destination) and the port fields may be lists; they are
        joined with commas, as Incus stores them.
    type: list
    elements: dict
    default: []
  egress:
    description: Rules for traffic leaving the NIC; same fields as O(ingress).
    type: list
    elements: dict
    default: []
extends_documentation_fragment:
  - homelab.aistack.incus
  - homelab.aistack.incus.object
"""

EXAMPLES = r"""
- name: Ollama on ai only for web and the host; everything outbound allowed
  homelab.aistack.incus_network_acl:
    name: aistack-lab-ai
    description: what may reach ai
    ingress:
      - action: allow
        protocol: tcp
        source: [10.100.10.1, 10.100.10.20]
        destination_port: "11434"
    egress:
      - {action: allow}

- name: Remove the ACL (after no NIC uses it)
  homelab.aistack.incus_network_acl:
    name: aistack-lab-ai
    state: absent
"""

RETURN = r"""
network_acl:
  description: >-
    The ACL after the run (in check mode, as it would be) - C(name), C(description) and its
    rules in C(ingress) and C(egress); empty when absent.
  returned: always
  type: dict
  sample:
    name: aistack-lab-ai
    description: what may reach ai
    ingress:
      - action: allow
        state: enabled
        protocol: tcp
        source: 10.100.10.20
        destination_port: "11434"
    egress: []
changes:
  description: >-
    C(ingress) or C(egress) when that rule set differed, C(description), or C(state) when the
    ACL was created or removed.
  returned: always
  type: list
  elements: str
  sample: [ingress]
"""

from ansible_collections.homelab.aistack.plugins.module_utils.incus_api import (  # noqa: E402
    IncusError,
    stringify,
)
from ansible_collections.homelab.aistack.plugins.module_utils.incus_reconcile import (  # noqa: E402
    Reconciler,
    description_change,
)

ACTIONS = ("allow", "allow-stateless", "reject", "drop")
RULE_KEYS = (
    "action",
    "state",
    "description",
    "source",
    "destination",
    "protocol",
    "source_port",
    "destination_port",
    "icmp_type",
    "icmp_code",
)


def _rule(rule: dict, where: str) -> dict:
    """A rule as Incus stores it: every known field a string, empty ones dropped."""
    unknown = sorted(set(rule) - set(RULE_KEYS))
    if unknown:
        raise IncusError(
            f"{where}: unknown rule field(s) {', '.join(unknown)}; use {', '.join(RULE_KEYS)}."
        )
    # A list of addresses or ports is written the way Incus stores it: comma-joined.
    joined = {k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in rule.items()}
    out = {k: v for k, v in stringify(joined).items() if v != ""}
    out.setdefault("state", "enabled")
    if out.get("action") not in ACTIONS:
        raise IncusError(f"{where}: action must be one of {', '.join(ACTIONS)}.")
    return out


def _rules(rules: list | None) -> list[dict]:
    return [{k: v for k, v in stringify(r).items() if v != ""} for r in rules or []]


def _key(rules: list[dict]) -> list[tuple]:
    return sorted(tuple(sorted(r.items())) for r in rules)


class NetworkAcl(Reconciler):
    kind = "network_acl"
    noun = "Incus network ACL"
    collection = "network-acls"

    def view(self, obj: dict) -> dict:
        return {
            "name": obj["name"],
            "description": obj.get("description", ""),
            "ingress": _rules(obj.get("ingress")),
            "egress": _rules(obj.get("egress")),
        }

    def rules(self, direction: str) -> list[dict]:
        return [
            _rule(r, f"ACL '{self.name}' {direction}[{i}]")
            for i, r in enumerate(self.p[direction])
        ]

    def new(self) -> dict:
        return {
            "name": self.name,
            "description": self.p["description"] or "",
            "ingress": self.rules("ingress"),
            "egress": self.rules("egress"),
        }

    def update(self, current: dict, before: dict) -> tuple[dict, dict, list[str]]:
        ingress, egress = self.rules("ingress"), self.rules("egress")
        changes = [
            direction
            for direction, rules in (("ingress", ingress), ("egress", egress))
            if _key(before[direction]) != _key(rules)
        ]
        description = description_change(self.p, before, changes)
        after = dict(before, description=description, ingress=ingress, egress=egress)
        body = {
            "description": description,
            "ingress": ingress,
            "egress": egress,
            "config": current.get("config") or {},
        }
        return after, body, changes


def main() -> None:
    NetworkAcl.execute(
        ingress={"type": "list", "elements": "dict", "default": []},
        egress={"type": "list", "elements": "dict", "default": []},
    )


if __name__ == "__main__":
    main()
