"""Helpers for the Incus integration tests: run the collection's modules and
playbooks the way a user does, and read Incus state with the incus CLI (not
with our own modules, so a test never checks a module with itself)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = ROOT / ".venv" / "bin"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Resources these tests may create; nothing else is ever touched.
TEST_PREFIX = "t-infra"


def collections_path() -> Path:
    """A private homelab.aistack link to this checkout.

    The shared .cache/collections link may be re-pointed by other test suites
    while these run; the tests must exercise this tree, whatever happens there.
    """
    base = ROOT / "tests" / "output" / "collections"
    link = base / "ansible_collections" / "homelab" / "aistack"
    if not link.is_symlink() or link.resolve() != ROOT:
        link.parent.mkdir(parents=True, exist_ok=True)
        tmp = link.with_name(f".aistack.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(ROOT)
        tmp.replace(link)
    return base


def ansible_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(collections_path()),
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_DEPRECATION_WARNINGS="0",
        PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
    )
    env.update(extra)
    return env


def run_module(module: str, args: dict, check: bool = False, diff: bool = False) -> dict:
    """Run homelab.aistack.<module> once on localhost; return its result."""
    cmd = [
        str(VENV_BIN / "ansible"),
        "localhost",
        "-i",
        "localhost,",
        "-c",
        "local",
        "-e",
        f"ansible_python_interpreter={VENV_BIN / 'python'}",
        "-m",
        f"homelab.aistack.{module}",
        "-a",
        json.dumps(args),
    ]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    env = ansible_env(ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="json")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False)
    try:
        out = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"no JSON from ansible: {proc.stdout}\n{proc.stderr}") from exc
    return out["plays"][0]["tasks"][0]["hosts"]["localhost"]


def playbook(
    name: str, inventory: Path, *extra: str, check: bool = False
) -> subprocess.CompletedProcess:
    cmd = [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(ROOT / name), *extra]
    if check:
        cmd += ["--check", "--diff"]
    return subprocess.run(
        cmd, capture_output=True, text=True, env=ansible_env(), cwd=ROOT, check=False
    )


def container_fixture(project: str, instance: str):
    """A module-scoped fixture `machine`: the name of a `bare_container` for that module."""

    @pytest.fixture(scope="module")
    def machine() -> Iterator[str]:
        with bare_container(project, instance) as name:
            yield name

    return machine


def play_on(
    project: str, instance: str, tmp_path: Path, name: str, extra: dict, group: str = "all",
    **host_vars: object,
) -> tuple[int, str]:
    """Run playbook `name` with extra vars `extra` against one container of `project`, over the
    Incus connection, as a host of `group` with `host_vars`: its exit code and its output."""
    host = {
        "ansible_connection": "homelab.aistack.incus",
        "ansible_incus_project": project,
        "ansible_python_interpreter": "/usr/bin/python3",
        **host_vars,
    }
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({group: {"hosts": {instance: host}}}))
    proc = playbook(name, inventory, "-e", json.dumps(extra))
    return proc.returncode, proc.stdout + proc.stderr


def recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP counters per host, as the user reads them."""
    found: dict[str, dict[str, int]] = {}
    for line in output.splitlines():
        m = re.match(r"^(\S+)\s+:\s+(ok=.*)$", line)
        if m:
            found[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
    return found


def incus(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["incus", *args], capture_output=True, text=True, check=check)


def query(path: str) -> dict | list | None:
    """GET an Incus API path with the incus CLI; None when it does not exist."""
    proc = incus("query", path, check=False)
    if proc.returncode != 0:
        if "not found" in proc.stderr.lower():
            return None
        raise AssertionError(f"incus query {path}: {proc.stderr}")
    return json.loads(proc.stdout)


def incus_exec(project: str, instance: str, command: str) -> subprocess.CompletedProcess:
    return incus("exec", "--project", project, instance, "--", "sh", "-c", command, check=False)


@contextmanager
def bare_container(project: str, instance: str, image: str = "aistack/debian-12") -> Iterator[str]:
    """A fresh container `instance` of `image` in `project` (created when missing) once its
    python3 is there; deleted afterwards, with the project when this made it and it is empty."""
    created_project = query(f"/1.0/projects/{project}") is None
    if created_project:
        incus("project", "create", project, "--config", "features.images=false",
              "--config", "features.profiles=false")
    incus("delete", "--force", "--project", project, instance, check=False)
    incus("launch", image, instance, "--project", project)
    try:
        deadline = time.monotonic() + 120
        while incus_exec(project, instance, "test -x /usr/bin/python3").returncode != 0:
            assert time.monotonic() < deadline, f"{instance} did not come up"
            time.sleep(2)
        yield instance
    finally:
        incus("delete", "--force", "--project", project, instance, check=False)
        if created_project and not (query(f"/1.0/instances?project={project}") or []):
            incus("project", "delete", project, check=False)


def state_snapshot(projects: list[str], networks: list[str]) -> dict:
    """Everything a user could see change in Incus for these projects and bridges."""
    snap: dict = {"projects": {}, "networks": {}}
    for project in projects:
        proj = query(f"/1.0/projects/{project}")
        if proj is None:
            snap["projects"][project] = None
            continue
        instances = query(f"/1.0/instances?project={project}&recursion=1") or []
        profiles = query(f"/1.0/profiles?project={project}&recursion=1") or []
        snap["projects"][project] = {
            "config": proj["config"],
            "description": proj["description"],
            "instances": {
                i["name"]: {
                    "status": i["status"],
                    "config": {
                        k: v for k, v in i["config"].items() if not k.startswith("volatile.")
                    },
                    "devices": i["devices"],
                    "profiles": i["profiles"],
                }
                for i in instances
            },
            "profiles": {
                p["name"]: {"config": p["config"], "devices": p["devices"]} for p in profiles
            },
        }
    for network in networks:
        net = query(f"/1.0/networks/{network}")
        snap["networks"][network] = None if net is None else net["config"]
    return snap
