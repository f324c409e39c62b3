# Copyright: aistack developers
# Apache License 2.0 (see galaxy.yml)
"""Placing an instance on an Incus cluster member: the target check and the move.

Kept apart from incus_instance so that the module holds the instance's own
settings and this file the cluster rules: a target must be a member of a real
cluster, and only a stopped instance is moved.
"""

from __future__ import annotations

from ansible_collections.homelab.aistack.plugins.module_utils.incus_api import IncusError


def check_target(api, label: str, target: str | None) -> None:
    """The wanted member must exist; said before anything is created or moved."""
    if target is None:
        return
    members = api.cluster_members()
    if members is None:
        raise IncusError(
            f"{label} names cluster member '{target}' (target), but the Incus "
            "server is not a cluster; remove target, or form the cluster first "
            "(cluster: in infra.yml, then make apply-host)."
        )
    if target not in members:
        raise IncusError(
            f"{label} names cluster member '{target}' (target), which is not in "
            f"the cluster (members: {', '.join(members)}); use one of them."
        )


def move_instance(run, current: dict, target: str | None) -> dict:
    """Move a stopped instance to the wanted member; refuse to touch a running one.

    `run` is the module's Reconciler: its api, label, project, check mode and the
    changes list, where a move is recorded as `location`. Returns the instance as
    it is (or, in check mode, would be) after the move.
    """
    location = current.get("location") or "none"
    if target is None or location == target:
        return current
    if current.get("status") != "Stopped":
        raise IncusError(
            f"{run.label} runs on cluster member '{location}', but target wants it on "
            f"'{target}'. A running instance is not moved: stop it "
            f"(incus stop --project {run.project} {run.name}) and run again to move "
            f"it, or set target back to '{location}'."
        )
    run.changes.append("location")
    if run.check:
        return dict(current, location=target)
    run.api.post(
        f"Moving {run.label} from member {location} to {target}",
        run.path,
        {"name": run.name, "migration": True, "live": False},
        run.project,
        params={"target": target},
    )
    return run.read()
