"""One sync: read and check infra.yml, render the blocks, plan the file changes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import catalog, emit, loader, render, writer
from .validate import Checked, check


@dataclass(frozen=True)
class SyncRequest:
    infra: Path
    output_dir: Path | None = None
    roles_dir: Path | None = None
    clean_orphans: bool = False
    roles: frozenset[str] | None = None  # a fixed role set instead of reading roles/

    @property
    def root(self) -> Path:
        return self.output_dir if self.output_dir is not None else self.infra.resolve().parent


def validate(request: SyncRequest) -> Checked:
    """Parse and check infra.yml; AistackError lists every problem."""
    doc = loader.load(request.infra, str(request.infra))
    roles = request.roles
    if roles is None:
        roles = catalog.machine_roles(catalog.roles_dir_for(request.infra, request.roles_dir))
    return check(doc, roles, request.infra.resolve().parent)


def bodies(checked: Checked) -> dict[str, str]:
    return {rel: emit.dump(data) for rel, data in render.render(checked).items()}


def plan(request: SyncRequest) -> writer.Plan:
    """Everything a sync would do, computed without writing anything."""
    return writer.plan(request.root, bodies(validate(request)), request.clean_orphans)
