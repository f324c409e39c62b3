#!/usr/bin/python
# Copyright: aistack developers
# Apache License 2.0 (see galaxy.yml)
"""Ansible module: an Incus instance (container or VM), its settings and its run state."""

from __future__ import annotations

DOCUMENTATION = r"""
module: incus_instance
short_description: Manage an Incus instance (container or virtual machine)
version_added: 0.1.0
description:
  - Creates, updates, starts, stops or removes one Incus instance through the
    Incus REST API (pylxd), and can wait until it has an IPv4 address.
  - O(config) and O(devices) are declared in full (keys Incus writes by itself,
    C(volatile.*) and C(image.*), are kept and never compared); a key or device
    removed from the request is removed from the instance.
  - O(image) is used only on creation; an existing instance keeps its root
    file system. O(type) cannot change on an existing instance (the module fails).
  - Before creating, the module checks that the image and every profile exist
    and fails naming the missing one.
  - On an Incus cluster, O(target) places the instance on one member. An existing
    instance on another member is moved there when it is stopped; a running one
    is left where it is and the module fails, saying how to move it.
  - O(config) holds keys such as C(limits.memory) or C(boot.autostart).
author: aistack developers
options:
  name:
    description: Instance name.
    type: str
    required: true
  project:
    description: Project of the instance.
    type: str
    default: default
  type:
    description: V(container) (also V(lxc)) or V(virtual-machine) (also V(vm)).
    type: str
    default: container
    choices: [container, virtual-machine, lxc, vm]
  image:
    description:
      - Image to create the instance from, C(REMOTE:ALIAS).
      - C(local:ALIAS) or a bare C(ALIAS) is an image on the Incus server itself
        (an image of the default project is visible from projects without C(features.images)).
      - C(images:ALIAS) pulls from the public image server, C(ubuntu:ALIAS) from Ubuntu's.
      - Required when the instance does not exist yet and O(state) is not V(absent).
    type: str
  description:
    description: Free-text description. Left unchanged when omitted.
    type: str
  profiles:
    description: Profiles in the order they apply; each must exist in O(project).
    type: list
    elements: str
    default: [default]
  devices:
    description: Instance devices by name, each a mapping of device keys.
    type: dict
    default: {}
  target:
    description:
      - Cluster member the instance runs on (C(incus cluster list) names them).
      - Omitted, Incus picks the member when it creates the instance and the
        module never moves it.
      - Fails when the server is not a cluster or has no member of that name.
    type: str
  ephemeral:
    description: Incus ephemeral flag (the instance is deleted when it stops).
    type: bool
    default: false
  state:
    description:
      - V(started) and V(stopped) create the instance when missing and set its run state.
      - V(present) creates or updates it and leaves a new instance stopped.
      - V(absent) stops and removes it.
    type: str
    choices: [started, stopped, present, absent]
    default: started
  force_delete:
    description:
      - With O(state=absent), remove C(security.protection.delete) first so a
        protected instance can be removed. Without it a protected instance fails
        with a message saying so.
    type: bool
    default: false
  wait_for_ipv4:
    description: With O(state=started), wait until O(interface) has a global IPv4 address.
    type: bool
    default: true
  interface:
    description: Interface whose address O(wait_for_ipv4) waits for.
    type: str
    default: eth0
  wait_timeout:
    description: Seconds to wait for the address.
    type: int
    default: 120
extends_documentation_fragment:
  - homelab.aistack.incus
  - homelab.aistack.incus.config
"""

EXAMPLES = r"""
- name: Container ai in project lab with a static address, started and reachable
  homelab.aistack.incus_instance:
    name: ai
    project: lab
    image: local:aistack/debian-12
    profiles: [default]
    config:
      limits.memory: 8GiB
      boot.autostart: true
      security.protection.delete: true
    devices:
      eth0: {type: nic, name: eth0, network: br-lab, ipv4.address: 10.100.10.10}
    state: started

- name: Remove it, protection included
  homelab.aistack.incus_instance:
    name: ai
    project: lab
    state: absent
    force_delete: true
"""

RETURN = r"""
instance:
  description: >-
    The instance after the run (in check mode, as it would be), with its C(status),
    C(ipv4) addresses and cluster C(location); empty when absent.
  returned: always
  type: dict
  sample:
    name: ai
    project: lab
    type: container
    status: Running
    profiles: [default]
    config: {limits.memory: 8GiB}
    devices: {eth0: {type: nic, network: br-lab, ipv4.address: 10.100.10.10}}
    ipv4: [10.100.10.10]
    location: gpu-box
changes:
  description:
    - Names of the fields that differed from the request.
    - C(state) stands for creation or removal, C(status) for a start or stop,
      C(location) for a move to another cluster member.
  returned: always
  type: list
  elements: str
  sample: [config.limits.memory, status]
"""

import time  # noqa: E402

from ansible_collections.homelab.aistack.plugins.module_utils.incus_api import (  # noqa: E402
    VOLATILE_PREFIXES,
    IncusError,
    stringify,
    stringify_devices,
)
from ansible_collections.homelab.aistack.plugins.module_utils.incus_cluster import (  # noqa: E402
    check_target,
    move_instance,
)
from ansible_collections.homelab.aistack.plugins.module_utils.incus_images import (  # noqa: E402
    image_source,
    require_image,
)
from ansible_collections.homelab.aistack.plugins.module_utils.incus_reconcile import (  # noqa: E402
    Reconciler,
    description_change,
    diff_keys,
)

TYPES = {"lxc": "container", "vm": "virtual-machine"}
PROTECT = "security.protection.delete"


def _user_config(config: dict) -> dict:
    return {k: v for k, v in (config or {}).items() if not k.startswith(VOLATILE_PREFIXES)}


class Instance(Reconciler):
    """Beyond the shared flow: image and profile checks before creation, a cluster
    member to run on, deletion protection, the run state and the wait for an address."""

    kind = "instance"
    noun = "instance"
    collection = "instances"
    preview_in_new_project = True
    label_with_project = True
    # The address is reported, but it is not a setting: it never shows as a diff.
    not_in_diff = ("ipv4",)

    def view(self, obj: dict) -> dict:
        return {
            "name": obj["name"],
            "project": self.project,
            "type": obj.get("type", ""),
            "status": obj.get("status", ""),
            "description": obj.get("description", ""),
            "profiles": list(obj.get("profiles") or []),
            "config": _user_config(obj.get("config")),
            "devices": {k: dict(v) for k, v in (obj.get("devices") or {}).items()},
            "ephemeral": bool(obj.get("ephemeral")),
            "ipv4": [],
            # The cluster member that holds it; "none" on a standalone server.
            "location": obj.get("location") or "none",
        }

    def ipv4(self) -> list[str]:
        """The global IPv4 addresses of the interface, as the instance's state says."""
        state = self.api.get(f"{self.path}/state", self.project) or {}
        addrs = ((state.get("network") or {}).get(self.p["interface"]) or {}).get("addresses")
        return [a["address"] for a in addrs or [] if a.get("family") == "inet"
                and a.get("scope") == "global"]

    def set_status(self, action: str, force: bool = False) -> None:
        body = {"action": action, "timeout": 30, "force": force}
        self.api.put(
            f"{action.capitalize()} {self.label}", f"{self.path}/state", body, self.project
        )

    def check_profiles(self) -> None:
        if self.project_pending:
            return
        for profile in self.p["profiles"]:
            if self.api.get(f"profiles/{profile}", self.project) is None:
                raise IncusError(
                    f"Profile '{profile}' of {self.label} does not exist in project "
                    f"{self.project}; create it first or remove it from profiles."
                )

    def wait_ipv4(self) -> list[str]:
        deadline = time.monotonic() + self.p["wait_timeout"]
        while True:
            addrs = self.ipv4()
            if addrs:
                return addrs
            if time.monotonic() >= deadline:
                raise IncusError(
                    f"{self.label} has no IPv4 address on {self.p['interface']} after "
                    f"{self.p['wait_timeout']} s: check its network device and the bridge's DHCP."
                )
            time.sleep(1)

    def absent(self, current: dict | None) -> None:
        protected = ((current or {}).get("config") or {}).get(PROTECT) == "true"
        if protected and not self.p["force_delete"]:
            raise IncusError(
                f"{self.label} is protected against deletion ({PROTECT}=true); "
                "set force_delete: true to remove it anyway."
            )
        super().absent(current)

    def remove(self, current: dict) -> None:
        if current.get("status") != "Stopped":
            self.set_status("stop", force=True)
        if (current.get("config") or {}).get(PROTECT) == "true":
            current = self.read()
            body = self.put_body(current, dict(_user_config(current["config"])))
            body["config"].pop(PROTECT, None)
            self.api.put(f"Unprotecting {self.label}", self.path, body, self.project)
        super().remove(current)

    def put_body(self, current: dict, user_config: dict) -> dict:
        config = {k: v for k, v in current["config"].items() if k.startswith(VOLATILE_PREFIXES)}
        config.update(user_config)
        return {
            "architecture": current.get("architecture"),
            "config": config,
            "devices": stringify_devices(self.p["devices"]),
            "profiles": list(self.p["profiles"]),
            "ephemeral": self.p["ephemeral"],
            "description": description_change(self.p, current, []),
        }

    def new(self) -> dict:
        project = None if self.project_pending else self.project
        require_image(self.api, self.p["image"], self.label, self.project, project)
        self.check_profiles()
        return {
            "name": self.name,
            "type": TYPES.get(self.p["type"], self.p["type"]),
            "description": self.p["description"] or "",
            "profiles": list(self.p["profiles"]),
            "config": stringify(self.p["config"]),
            "devices": stringify_devices(self.p["devices"]),
            "ephemeral": self.p["ephemeral"],
            "source": image_source(self.p["image"]),
        }

    def preview(self, body: dict) -> dict:
        status = "Running" if self.p["state"] == "started" else "Stopped"
        return self.view(dict(body, status=status, location=self.p["target"]))

    def create(self, body: dict) -> None:
        target = self.p["target"]
        where = f" on member {target}" if target else ""
        self.api.post(
            f"Creating {self.label}{where} from {self.p['image']}",
            "instances",
            body,
            self.project,
            params={"target": target} if target else None,
        )

    def update(self, current: dict, before: dict) -> tuple[dict, dict, list[str]]:
        wanted_type = TYPES.get(self.p["type"], self.p["type"])
        if current.get("type") != wanted_type:
            raise IncusError(
                f"{self.label} is a {current.get('type')}, not a {wanted_type}; "
                "the type of an existing instance cannot change (remove it first)."
            )
        config = stringify(self.p["config"])
        devices = stringify_devices(self.p["devices"])
        changes = diff_keys("config", before["config"], config)
        changes += diff_keys("devices", before["devices"], devices)
        if before["profiles"] != list(self.p["profiles"]):
            self.check_profiles()
            changes.append("profiles")
        if before["ephemeral"] != self.p["ephemeral"]:
            changes.append("ephemeral")
        description = description_change(self.p, before, changes)
        body = self.put_body(current, config)
        after = dict(
            before,
            config=config,
            devices=devices,
            profiles=body["profiles"],
            ephemeral=body["ephemeral"],
            description=description,
        )
        return after, body, changes

    def present(self, current: dict | None) -> dict:
        check_target(self.api, self.label, self.p["target"])
        if current is not None:
            current = move_instance(self, current, self.p["target"])
        after = super().present(current)
        wanted = {"started": "Running", "stopped": "Stopped"}.get(self.p["state"])
        if wanted and after.get("status") != wanted:
            self.changes.append("status")
            if not self.check:
                self.set_status("start" if wanted == "Running" else "stop")
            after["status"] = wanted
        if self.p["state"] == "started" and self.p["wait_for_ipv4"] and not self.check:
            after["ipv4"] = self.wait_ipv4()
        elif current is not None:
            after["ipv4"] = self.ipv4()
        return after


def main() -> None:
    Instance.execute(
        type={
            "type": "str",
            "default": "container",
            "choices": ["container", "virtual-machine", "lxc", "vm"],
        },
        image={"type": "str"},
        profiles={"type": "list", "elements": "str", "default": ["default"]},
        config={"type": "dict", "default": {}},
        devices={"type": "dict", "default": {}},
        target={"type": "str"},
        ephemeral={"type": "bool", "default": False},
        state={
            "type": "str",
            "choices": ["started", "stopped", "present", "absent"],
            "default": "started",
        },
        force_delete={"type": "bool", "default": False},
        wait_for_ipv4={"type": "bool", "default": True},
        interface={"type": "str", "default": "eth0"},
        wait_timeout={"type": "int", "default": 120},
    )


if __name__ == "__main__":
    main()
