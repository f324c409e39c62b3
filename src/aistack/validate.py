"""Turn a parsed infra.yml into the typed model, collecting every problem on the way.

Nothing stops at the first error: each check records an Issue and carries on
with what it can, so one run of `aistack validate` lists everything to fix.
This module runs the checks in order; each section has its own module, and all
of them report through one ``error`` callback:

- ``readers``: one YAML value into a typed value (strings, booleans, Incus config…)
- ``global_settings``: ``global:``, the remote Incus server included
- ``domains`` and ``machines``: the domains, their profiles and machines; ``names``
  holds which names and addresses are taken
- ``cluster`` and ``front_door``: their sections
- ``cross_rules``: rules over all machines at once; ``wyoming_lan``: a published Wyoming port
- ``wiring``: which service each consumer is wired to
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import cluster, cross_rules, domains, front_door, global_settings, wiring, wyoming_lan
from .errors import AistackError, Issue
from .loader import Document, KeyPath, format_path
from .names import RESERVED_GROUPS
from .readers import Reader, yaml_type
from .schema import HOST_ONLY_ROLES, Infra


@dataclass(frozen=True)
class Checked:
    """A valid infra.yml: the model plus the service endpoints derived from roles."""

    infra: Infra
    wiring: dict[str, wiring.Wiring]
    front_door: front_door.FrontDoor | None = None


def check(doc: Document, roles: Iterable[str], base_dir: Path) -> Checked:
    """Validate a parsed infra.yml; raise AistackError listing every problem."""
    issues: list[Issue] = list(doc.issues)

    def error(path: KeyPath, message: str) -> None:
        issues.append(doc.issue(path, message))

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
    read = Reader(error, base_dir)
    service_roles = frozenset(roles) - HOST_ONLY_ROLES
    top_data = read.section(data, (), "top") or {}
    settings = global_settings.check(top_data.get("global"), read)
    checked = domains.check(top_data.get("domains"), settings, service_roles, read)
    machines = tuple(m for d in checked.domains for m in d.machines)
    reserved = {d.name for d in checked.domains} | {m.name for m in machines} | set(service_roles)
    reserved |= set(RESERVED_GROUPS)
    members = cluster.check(
        top_data.get("cluster"),
        reserved,
        settings.settings.base_subnet,
        settings.settings.remote,
        error,
    )
    infra = Infra(
        settings=settings.settings, domains=checked.domains, machines=machines, cluster=members
    )
    if members is not None or top_data.get("cluster") is None:
        cluster.check_targets(infra, error)
    cross_rules.gpu_policy(infra, error)
    cross_rules.allow_sources(infra, error)
    resolved: dict[str, wiring.Wiring] = {}
    if checked.complete:
        resolved, problems = wiring.resolve(infra)
        for path, message in problems:
            error(path, message)
    door = None
    if checked.complete:
        door = _front_door(top_data.get("front_door"), infra, resolved, read)
        wyoming_lan.check(infra, door, error)
    if issues:
        raise AistackError(issues)
    return Checked(infra=infra, wiring=resolved, front_door=door)


def _front_door(
    value: Any, infra: Infra, resolved: dict[str, wiring.Wiring], read: Reader
) -> front_door.FrontDoor | None:
    """The front door (front_door.py holds its rules); on unless the file turns it off."""
    if isinstance(value, dict):
        read.section(value, ("front_door",), "front_door")
        if isinstance(value.get("certificate"), dict):
            read.section(
                value["certificate"], ("front_door", "certificate"), "front_door_certificate"
            )
    stt_host = {
        name: w.variables[wiring.STT_HOST]
        for name, w in resolved.items()
        if wiring.STT_HOST in w.variables
    }
    return front_door.check(value, infra, stt_host, read.error, read.existing_file)


__all__ = ["Checked", "check", "format_path"]
