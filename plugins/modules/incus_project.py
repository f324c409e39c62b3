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
  - Incus removes only empty projects (no instances, images, volumes or
    profiles besides C(default)); the module fails naming what is left.
  - O(config) holds project keys such as C(features.profiles) or C(limits.instances).
author: aistack developers
options:
  name:
    description: Project name.
    type: str
    required: true
extends_documentation_fragment:
  - homelab.aistack.incus
  - homelab.aistack.incus.config
  - homelab.aistack.incus.object
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
  description: >-
    The project after the run (in check mode, as it would be) - C(name), C(description),
    C(config); empty when absent.
  returned: always
  type: dict
  sample:
    name: lab
    description: Private AI stack
    config:
      features.images: "false"
      features.profiles: "true"
changes:
  description: >-
    C(config.KEY) for each requested config key that differed, C(description), or C(state) when
    the project was created or removed.
  returned: always
  type: list
  elements: str
  sample: [config.features.images]
"""

from ansible_collections.homelab.aistack.plugins.module_utils.incus_api import (  # noqa: E402
    IncusError,
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
    shown = {"description": "", "config": {}}
    collection = "projects"
    in_project = False

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
    Project.execute(
        config={"type": "dict", "default": {}},
    )


if __name__ == "__main__":
    main()
