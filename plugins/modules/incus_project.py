#!/usr/bin/python
# Copyright: aistack developers
# Apache License 2.0 (see galaxy.yml)
"""Ansible module: an Incus project, created, updated or removed."""

from __future__ import annotations

DOCUMENTATION = r"""
module: incus_project
short_description: Manage an Incus project
version_added: 0.1.0
description:
  - Creates, updates or removes one Incus project through the Incus REST API (pylxd).
  - Only the config keys given in O(config) are managed; keys Incus or someone
    else set are left alone.
  - C(features.*) keys can only change while the project is empty; Incus
    refuses otherwise and the module fails with its message.
author: aistack developers
options:
  name:
    description: Project name.
    type: str
    required: true
  description:
    description: Free-text description. Left unchanged when omitted.
    type: str
  config:
    description:
      - Project config keys, for example C(features.profiles) or C(limits.instances).
      - Values are compared as strings (Incus stores them so); booleans become C(true)/C(false).
    type: dict
    default: {}
  state:
    description:
      - V(present) creates or updates the project; V(absent) removes it.
      - Incus removes only empty projects (no instances, images, volumes or
        profiles besides C(default)).
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - homelab.aistack.incus
"""

EXAMPLES = r"""
- name: Create the project of domain lab, sharing images with the default project
  homelab.aistack.incus_project:
    name: lab
    description: Private AI stack
    config:
      features.images: "false"
      features.profiles: "true"

- name: Remove the project
  homelab.aistack.incus_project:
    name: lab
    state: absent
"""

RETURN = r"""
project:
  description: The project after the run (as it would be, in check mode); empty when absent.
  returned: always
  type: dict
  sample:
    name: lab
    description: Private AI stack
    config:
      features.images: "false"
      features.profiles: "true"
changes:
  description: Names of the fields that differed from the request.
  returned: always
  type: list
  elements: str
  sample: [config.features.images]
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.homelab.aistack.plugins.module_utils.incus_api import (  # noqa: E402
    IncusError,
    connection_argument_spec,
    run_module,
    stringify,
)
from ansible_collections.homelab.aistack.plugins.module_utils.incus_reconcile import (  # noqa: E402
    Reconciler,
    description_change,
    merge_config,
)


class Project(Reconciler):
    kind = "project"
    noun = "Incus project"
    collection = "projects"
    in_project = False

    def view(self, obj: dict) -> dict:
        return {
            "name": obj["name"],
            "description": obj.get("description", ""),
            "config": dict(obj.get("config") or {}),
        }

    def new(self) -> dict:
        return {
            "name": self.name,
            "description": self.p["description"] or "",
            "config": stringify(self.p["config"]),
        }

    def update(self, current: dict, before: dict) -> tuple[dict, dict, list[str]]:
        changes: list[str] = []
        config = merge_config(before["config"], stringify(self.p["config"]), changes)
        description = description_change(self.p, before, changes)
        body = {"description": description, "config": config}
        return {"name": self.name, **body}, body, changes

    def remove(self, current: dict) -> None:
        used = [u for u in current.get("used_by") or [] if "/profiles/default" not in u]
        if used:
            raise IncusError(
                f"Incus project '{self.name}' is not empty, remove these first: "
                + ", ".join(sorted(used))
            )
        super().remove(current)


def main() -> None:
    spec = connection_argument_spec()
    spec.update(
        name={"type": "str", "required": True},
        description={"type": "str"},
        config={"type": "dict", "default": {}},
        state={"type": "str", "choices": ["present", "absent"], "default": "present"},
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    run_module(module, lambda api: Project(module, api).run())


if __name__ == "__main__":
    main()
