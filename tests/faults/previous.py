"""The release before this one, for the upgrade test: its code in the faults checkout, and
what an upgrade from it may change.

The faults stack is applied by PREVIOUS (a commit of this repository that passed CI), the
way an owner applied it before pulling; then the checkout gets this tree's code, the owner's
files staying as they are (infra.yml, the inventory, host_vars, `.aistack/`), and `make
apply` runs again. A task may report a change only in a role whose files differ between the
two (plus the roles the test itself changes an input of): anything else means an upgrade
touches a machine for nothing, or a role is not idempotent across versions.
"""

from __future__ import annotations

import io
import re
import subprocess
import tarfile

from tests.helpers.checkout import ROOT, Checkout, working_files

# "batching: an interim's encoder frames computed with math.ceil ...", the last commit of
# wave 5 (CI passed on it).
PREVIOUS = "e349638d9b64b4d14c892420859c4228a889a04b"
# What belongs to the owner, not to the release: left alone when the code is switched.
OWNER_PATHS = ("infra.yml", "inventory/", "host_vars/", "group_vars/", ".aistack/", ".e2e/")
TASK = re.compile(r"^(?:TASK|RUNNING HANDLER) \[(?P<name>.*)\] \*+$")
LIBRARY_ROLES = {"service_common"}  # imported by the service roles, never applied alone
ROLE = re.compile(r"^(?:homelab\.aistack\.)?(?P<role>[a-z_]+) : ")
# A task's result line: "changed: [ai]", "ok: [localhost -> web] => (item=...)".
RESULT = re.compile(r"^(?P<state>ok|changed|skipping|failed|fatal): \[(?P<host>[^\]\s]+)")


def _git(*args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, check=True).stdout


def _owned(path: str) -> bool:
    return any(path == p or path.startswith(p) for p in OWNER_PATHS)


def _release_files(commit: str | None) -> list[str]:
    """The files of a release: a commit's tree, or (None) this checkout's working tree."""
    if commit is None:
        files = working_files()
    else:
        files = _git("ls-tree", "-r", "-z", "--name-only", commit).decode().split("\0")
    return [f for f in files if f and not _owned(f)]


def switch_code(checkout: Checkout, commit: str | None) -> None:
    """Replace the checkout's code with a release's (commit, or None: this working tree),
    as `git checkout` would, leaving the owner's files alone."""
    current = _release_files(None)
    for rel in set(_release_files(PREVIOUS)) | set(current):
        target = checkout.path / rel
        if target.is_file() or target.is_symlink():
            target.unlink()
    if commit is None:
        for rel in current:
            source, target = ROOT / rel, checkout.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if source.is_symlink():
                target.symlink_to(source.readlink())
            elif source.is_file():
                target.write_bytes(source.read_bytes())
                target.chmod(source.stat().st_mode)
        return
    with tarfile.open(fileobj=io.BytesIO(_git("archive", "--format=tar", commit))) as archive:
        members = [
            m for m in archive.getmembers() if (m.isfile() or m.issym()) and not _owned(m.name)
        ]
        archive.extractall(checkout.path, members=members, filter="tar")


def code_env(checkout: Checkout) -> dict[str, str]:
    """`make` in the checkout runs the checkout's generator (src/), not the shared venv's."""
    return {"PYTHONPATH": str(checkout.path / "src")}


def roles_changed_since(commit: str) -> set[str]:
    """Roles with a file that differs between commit and this working tree."""
    names = _git("diff", "--name-only", "-z", commit, "--", "roles/").decode().split("\0")
    names += _git("ls-files", "-z", "--others", "--exclude-standard", "roles/").decode().split("\0")
    return {name.split("/")[1] for name in names if name.count("/") >= 2}


def changed_tasks(output: str) -> dict[str, list[str]]:
    """Role (or "" for a playbook's own task) -> the tasks that reported a change. A task of
    a role that others import (LIBRARY_ROLES) counts for the role that imported it: the last
    other role whose task ran before it on the same machine (services.yml provisions the
    machines side by side, so their tasks interleave in the output)."""
    found: dict[str, list[str]] = {}
    task, role = None, ""
    caller: dict[str, str] = {}  # machine -> the last non-library role seen running there
    for line in output.splitlines():
        header = TASK.match(line)
        if header:
            task = header["name"]
            match = ROLE.match(task)
            role = match["role"] if match else ""
            continue
        result = RESULT.match(line)
        if not task or not result:
            continue
        host = result["host"]
        if role not in LIBRARY_ROLES:
            caller[host] = role
        if result["state"] == "changed":
            owner = caller.get(host, role) if role in LIBRARY_ROLES else role
            tasks = found.setdefault(owner, [])
            if task not in tasks:
                tasks.append(task)
    return found


def exists(commit: str) -> bool:
    return (
        subprocess.run(["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=ROOT).returncode == 0
    )
