"""The collection as Ansible users consume it: `ansible-galaxy collection build`, installed
with `ansible-galaxy collection install` into an empty path, documents every module and
parses every playbook from there, with the dependencies galaxy.yml declares taken from the
collections the pinned `ansible` package bundles (Galaxy itself is not reachable here).

The build runs on a copy of the checkout with a user's state planted in it (secrets,
generated inventory, test logs), so the test proves those stay out of the artifact
whatever the machine's checkout holds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
FQCN = f"{GALAXY['namespace']}.{GALAXY['name']}"
MODULES = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py")
                 if not p.name.startswith("_"))  # fmt: skip
PLAYBOOKS = sorted(p.stem for p in (REPO / "playbooks").glob("*.yml"))

# What the artifact's top level holds: the collection, and the engine's sources (the
# stt_server role builds its wheel from stt/, the filter plugin reads stt/src).
SHIPPED = {"MANIFEST.json", "FILES.json", "README.md", "CHANGELOG.md", "infra.yml", "docs",
           "examples", "meta", "playbooks", "plugins", "roles", "stt"}  # fmt: skip
# What must never be in it: a user's state and generated files, development and CI.
NEVER = ["inventory", "host_vars", "group_vars", ".aistack", "tests", "bench", "molecule",
         ".ci", "scripts", "src", "stt/tests", ".venv", ".cache", "Makefile",
         "requirements.txt", "pyproject.toml", "ansible.cfg"]  # fmt: skip
# Copied into the scratch checkout only as far as the build reads them.
SKIP_COPY = shutil.ignore_patterns(".git", ".venv", ".cache", "__pycache__", "*.pyc",
                                   ".pytest_cache", ".ruff_cache", ".hypothesis", "output")


def _run(*argv: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=cwd, check=False)
    assert run.returncode == 0, f"{' '.join(argv)}\n{run.stdout[-4000:]}\n{run.stderr[-4000:]}"
    return run


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The artifact, its member names, and where it was installed, with the environment
    that sees only that installation (no ansible.cfg of the checkout, which would point
    Ansible at the checkout itself)."""
    tmp = tmp_path_factory.mktemp("collection")
    checkout = tmp / "checkout"
    shutil.copytree(REPO, checkout, ignore=SKIP_COPY, symlinks=True)
    # A user's state, as a working checkout has it.
    for planted in (".aistack/secrets/stt_api_key-ai", "tests/output/e2e.log",
                    ".cache/stt-wheel/aistack_stt-0-py3-none-any.whl"):
        (checkout / planted).parent.mkdir(parents=True, exist_ok=True)
        (checkout / planted).write_text("not for the artifact\n")
    (tmp / "ansible.cfg").write_text("[defaults]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(tmp / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=str(tmp / "collections"),
               ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"), HOME=str(tmp))  # fmt: skip
    _run(str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp / "dist"),
         str(checkout), env=env, cwd=tmp)  # fmt: skip
    (artifact,) = (tmp / "dist").glob("*.tar.gz")
    with tarfile.open(artifact) as tar:
        names = tar.getnames()
    _run(str(BIN / "ansible-galaxy"), "collection", "install", "--no-deps", "-p",
         str(tmp / "collections"), str(artifact), env=env, cwd=tmp)  # fmt: skip
    installed = tmp / "collections" / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    return {"names": names, "installed": installed, "env": env, "cwd": tmp}


def test_the_artifact_holds_the_collection_and_nothing_of_a_users_checkout(built) -> None:
    names = built["names"]
    top = {n.split("/")[0] for n in names}
    assert top >= SHIPPED, SHIPPED - top
    for path in NEVER:
        assert not [n for n in names if n == path or n.startswith(path + "/")], path
    assert not [n for n in names if "__pycache__" in n or n.endswith((".pyc", ".whl"))]
    # What the roles read at run time is there.
    assert "stt/src/aistack_stt/vram/estimate.py" in names
    assert "stt/pyproject.toml" in names
    assert "roles/stt_server/tasks/main.yml" in names


def test_the_declared_dependencies_hold_what_the_pinned_ansible_bundles() -> None:
    import ansible_collections

    bundled = Path(ansible_collections.__path__[0])
    declared = GALAXY["dependencies"]
    assert set(declared) >= {"community.general", "community.crypto"}
    for name, spec in declared.items():
        manifest = bundled.joinpath(*name.split("."), "MANIFEST.json")
        version = json.loads(manifest.read_text())["collection_info"]["version"]
        assert _satisfies(version, spec), f"{name} {version} is outside {spec!r} in galaxy.yml"
    # Every collection the roles and playbooks name is declared (or is ansible.builtin).
    used = set()
    for path in [*(REPO / "roles").rglob("*.yml"), *(REPO / "playbooks").rglob("*.yml")]:
        used |= set(re.findall(r"\b(community\.[a-z_]+|ansible\.(?!builtin\b)[a-z_]+)\.[a-z_]+",
                               path.read_text()))
    assert used <= set(declared), used - set(declared)


def _satisfies(version: str, spec: str) -> bool:
    def parts(v: str) -> tuple[int, ...]:
        return tuple(int(x) for x in v.split("."))

    ops = {">=": lambda a, b: a >= b, "<": lambda a, b: a < b, ">": lambda a, b: a > b,
           "<=": lambda a, b: a <= b, "==": lambda a, b: a == b}  # fmt: skip
    for clause in spec.split(","):
        op, bound = re.fullmatch(r"\s*(>=|<=|==|<|>)\s*([\d.]+)\s*", clause).groups()
        if not ops[op](parts(version), parts(bound)):
            return False
    return True


def test_every_module_is_documented_from_the_installed_collection(built) -> None:
    run = _run(str(BIN / "ansible-doc"), "--json", *(f"{FQCN}.{m}" for m in MODULES),
               env=built["env"], cwd=built["cwd"])  # fmt: skip
    docs = json.loads(run.stdout)
    assert sorted(docs) == sorted(f"{FQCN}.{m}" for m in MODULES), run.stderr
    for name, entry in docs.items():
        doc = entry["doc"]
        assert doc["short_description"] and doc["options"] is not None, name
        # Read from the installed copy, not from the checkout.
        assert Path(doc["filename"]).is_relative_to(built["installed"]), doc["filename"]


def test_every_playbook_parses_from_the_installed_collection(built) -> None:
    assert {"site", "host", "infra", "destroy"} <= set(PLAYBOOKS)
    run = _run(str(BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,",
               *(f"{FQCN}.{p}" for p in PLAYBOOKS), env=built["env"], cwd=built["cwd"])
    assert "ERROR" not in run.stdout + run.stderr, run.stdout + run.stderr
