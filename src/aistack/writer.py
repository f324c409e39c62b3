"""Plan the file changes of a sync, show them as a diff, and apply them.

Planning reads every file first and fails before anything is written, so a
damaged file never leaves the output half updated. Unchanged files are not
touched at all (not even their modification time).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from . import blocks
from .errors import AistackError, Issue

OUTPUT_DIRS = ("inventory", "group_vars", "host_vars")
# inventory/ is the inventory source; Ansible reads group_vars/ and host_vars/
# next to the source, so links there make the top-level directories count.
VARS_LINKS = {"inventory/group_vars": "../group_vars", "inventory/host_vars": "../host_vars"}


@dataclass(frozen=True)
class Change:
    rel: str
    old: str | None
    new: str | None  # None: the file is removed

    @property
    def verb(self) -> str:
        if self.new is None:
            return "remove"
        return "create" if self.old is None else "update"


@dataclass(frozen=True)
class Orphan:
    rel: str
    reason: str


@dataclass
class Plan:
    root: Path
    changes: list[Change] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    orphans: list[Orphan] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.changes and not self.links


def _read(path: Path) -> str | None:
    try:
        # newline="" keeps "\r\n" as written: the user's text must survive byte for byte.
        with path.open(encoding="utf-8", newline="") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _owner(rel: str) -> str:
    folder, name = rel.split("/", 1)
    stem = name[: -len(".yml")]
    if folder == "host_vars":
        return f"machine {stem} is no longer in infra.yml"
    if rel == "inventory/incus_cluster.yml":
        return "infra.yml no longer has a cluster section"
    return f"domain {stem} is no longer in infra.yml"


def plan(root: Path, bodies: dict[str, str], clean_orphans: bool) -> Plan:
    """Compare what the files hold with what they should hold."""
    result = Plan(root)
    problems: list[Issue] = []
    for rel, body in bodies.items():
        old = _read(root / rel)
        try:
            new = blocks.compose(old, body)
        except blocks.BlockError as exc:
            problems.append(Issue(rel, 0, "", str(exc)))
            continue
        if new == old:
            result.unchanged.append(rel)
        else:
            result.changes.append(Change(rel, old, new))
    if problems:
        raise AistackError(problems)
    for folder in OUTPUT_DIRS:
        directory = root / folder
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.yml")):
            rel = f"{folder}/{path.name}"
            if rel in bodies or path.is_symlink() or rel == "group_vars/all.yml":
                continue
            text = _read(path)
            if text is None or not blocks.has_block(text):
                continue  # the user's own file, not ours
            result.orphans.append(Orphan(rel, _owner(rel)))
            if clean_orphans:
                result.changes.append(Change(rel, text, None))
    for link in VARS_LINKS:
        if not os.path.lexists(root / link):
            result.links.append(link)
    return result


def diff(plan: Plan) -> str:
    """A unified diff of every change, as `git diff` users read it."""
    import difflib  # only --dry-run needs it

    parts: list[str] = []
    for change in plan.changes:
        old = (change.old or "").splitlines(keepends=True)
        new = (change.new or "").splitlines(keepends=True)
        before = f"a/{change.rel}" if change.old is not None else "/dev/null"
        after = f"b/{change.rel}" if change.new is not None else "/dev/null"
        parts.extend(difflib.unified_diff(old, new, before, after))
    for link in plan.links:
        parts.append(f"link {link} -> {VARS_LINKS[link]}\n")
    return "".join(parts)


def _private(rel: str) -> bool:
    """host_vars hold the machines' vars, which may be secrets: owner-only, 0600."""
    return rel.startswith("host_vars/")


def _write_new(path: Path, text: str, mode: int = 0o644) -> None:
    """A file that did not exist: no reader can see it half written, so no temp file."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        data = memoryview(text.encode("utf-8"))
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str, private: bool = False) -> None:
    """Replace a file so that a reader sees either the old or the new text, never a mix."""
    import tempfile

    mode = path.stat().st_mode & 0o7777 if path.exists() else 0o644
    if private:
        mode &= 0o700
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def apply(plan: Plan) -> None:
    for folder in {str(Path(change.rel).parent) for change in plan.changes if change.new}:
        (plan.root / folder).mkdir(parents=True, exist_ok=True)
    for change in plan.changes:
        path = plan.root / change.rel
        if change.new is None:
            path.unlink(missing_ok=True)
        elif change.old is None:
            _write_new(path, change.new, 0o600 if _private(change.rel) else 0o644)
        else:
            _write_atomic(path, change.new, _private(change.rel))
    for link in plan.links:
        path = plan.root / link
        path.parent.mkdir(parents=True, exist_ok=True)
        (plan.root / VARS_LINKS[link][3:]).mkdir(parents=True, exist_ok=True)
        path.symlink_to(VARS_LINKS[link], target_is_directory=True)
