#!/usr/bin/python
# Copyright: aistack developers
# Apache License 2.0 (see galaxy.yml)
"""Ansible module: an Incus profile with its config and devices."""

from __future__ import annotations

DOCUMENTATION = r"""
module: incus_profile
short_description: Manage an Incus profile (config and devices)
version_added: 0.1.0
description:
  - Creates, updates or removes one Incus profile through the Incus REST API (pylxd).
  - A profile is declared in full; O(config) and O(devices) replace what the
    profile holds, so a key or device removed from the request is removed from
    the profile.
  - The V(default) profile of a project always exists; V(present) updates it.
  - Incus refuses to remove a profile while instances use it.
  - O(config) holds keys such as C(nvidia.runtime) or C(limits.memory).
author: aistack developers
options:
  name:
    description: Profile name.
    type: str
    required: true
  project:
    description: Project the profile lives in (one with C(features.profiles), or V(default)).
    type: str
    default: default
  devices:
    description: Devices by name, each a mapping of device keys (C(type) is required by Incus).
    type: dict
    default: {}
extends_documentation_fragment:
  - homelab.aistack.incus
  - homelab.aistack.incus.config
  - homelab.aistack.incus.object
"""

EXAMPLES = r"""
- name: Default profile of project lab, root disk and the domain bridge
  homelab.aistack.incus_profile:
    name: default
    project: lab
    devices:
      root: {type: disk, path: /, pool: default}
      eth0: {type: nic, name: eth0, network: br-lab}

- name: GPU profile with the NVIDIA driver libraries passed in
  homelab.aistack.incus_profile:
    name: gpu
    project: lab
    config:
      nvidia.runtime: true
    devices:
      gpu: {type: gpu}
"""

RETURN = r"""
profile:
  description: >-
    The profile after the run (in check mode, as it would be) - C(name), C(description),
    C(config), C(devices); empty when absent.
  returned: always
  type: dict
  sample:
    name: gpu
    description: ""
    config: {nvidia.runtime: "true"}
    devices: {gpu: {type: gpu}}
changes:
  description: >-
    C(config.KEY) and C(devices.NAME) for each key or device that differed (added, changed or
    removed), C(description), or C(state) when the profile was created or removed.
  returned: always
  type: list
  elements: str
  sample: [devices.gpu]
"""

from ansible_collections.homelab.aistack.plugins.module_utils.incus_api import (  # noqa: E402
    stringify,
    stringify_devices,
)
from ansible_collections.homelab.aistack.plugins.module_utils.incus_reconcile import (  # noqa: E402
    Reconciler,
    description_change,
    diff_keys,
)


class Profile(Reconciler):
    kind = "profile"
    noun = "Incus profile"
    shown = {"description": "", "config": {}, "devices": {}}
    collection = "profiles"
    preview_in_new_project = True
    label_with_project = True

    def new(self) -> dict:
        return {
            "name": self.name,
            "description": self.p["description"] or "",
            "config": stringify(self.p["config"]),
            "devices": stringify_devices(self.p["devices"]),
        }

    def update(self, current: dict, before: dict) -> tuple[dict, dict, list[str]]:
        config = stringify(self.p["config"])
        devices = stringify_devices(self.p["devices"])
        changes = diff_keys("config", before["config"], config)
        changes += diff_keys("devices", before["devices"], devices)
        description = description_change(self.p, before, changes)
        body = {"description": description, "config": config, "devices": devices}
        return {"name": self.name, **body}, body, changes


def main() -> None:
    Profile.execute(
        config={"type": "dict", "default": {}},
        devices={"type": "dict", "default": {}},
    )


if __name__ == "__main__":
    main()
