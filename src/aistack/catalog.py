"""Which roles a machine may carry: the role directories that exist in the collection."""

from __future__ import annotations

from pathlib import Path

from .errors import AistackError, Issue
from .schema import GENERATED_ROLES, HOST_ONLY_ROLES

# src/aistack/catalog.py → the collection root, for an editable install in a checkout.
_COLLECTION_ROOT = Path(__file__).resolve().parents[2]


def roles_dir_for(infra_path: Path, explicit: Path | None = None) -> Path:
    """roles/ next to infra.yml, else the collection's own roles/."""
    if explicit is not None:
        candidates = [explicit]
    else:
        candidates = [infra_path.resolve().parent / "roles", _COLLECTION_ROOT / "roles"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise AistackError(
        [
            Issue(
                str(candidates[0]),
                0,
                "",
                "no roles/ directory here, so no role "
                "can be checked; run from the collection or pass --roles-dir",
            )
        ]
    )


def machine_roles(roles_dir: Path) -> frozenset[str]:
    """Role names machines may use: every role directory except the host-only ones
    and those the generator assigns itself (front_door)."""
    return frozenset(
        entry.name
        for entry in roles_dir.iterdir()
        if entry.is_dir()
        and not entry.name.startswith((".", "_"))
        and entry.name not in HOST_ONLY_ROLES
        and entry.name not in GENERATED_ROLES
    )
