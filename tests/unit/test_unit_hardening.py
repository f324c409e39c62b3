"""The service units, rendered from the role templates with the role defaults,
are rated below 4.0 by `systemd-analyze security --offline` and carry the
resource limits. The molecule scenarios prove the services still start under
them; the faults test proves that each comes back after a kill -9.

The front door is Debian's nginx.service plus our drop-in: it is checked as
systemd loads it, the drop-in over a stand-in for the stock unit (which holds
no security setting of its own, so the rating is the drop-in's)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MAX_EXPOSURE = 4.0
UNITS = {
    "ollama_server": ("ollama.service.j2", "ollama.service"),
    "stt_server": ("aistack-stt.service.j2", "aistack-stt.service"),
    "open_webui": ("open-webui.service.j2", "open-webui.service"),
    "front_door": ("nginx-aistack.conf.j2", "etc/systemd/system/nginx.service.d/aistack.conf"),
}
# What Debian's nginx.service (nginx-common) starts, without its comments.
STOCK_NGINX = """[Unit]
Description=nginx stand-in
[Service]
Type=forking
PIDFile=/run/nginx.pid
ExecStart=/usr/sbin/nginx -g 'daemon on; master_process on;'
[Install]
WantedBy=multi-user.target
"""
# What the tasks register before the unit is written; a CPU-only machine.
FACTS = {"__stt_server_runtime": {"device": "cpu"}, "aistack_instance": {"gpu": False,
         "ip": "10.100.10.10"}}  # fmt: skip


def _systemd_analyze(unit: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze security --offline` of one unit file, or of nginx.service with its
    drop-in. The tool comes with Debian's `systemd` package, which scripts/run-tests installs
    for the unit stage where it is missing: a machine without it fails here, it never skips."""
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze is not installed (apt-get install systemd)")
    target = [str(unit)]
    if unit.parent.name.endswith(".service.d"):
        target = [f"--root={unit.parents[4]}", unit.parent.name.removesuffix(".d")]
    return subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", *target],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> dict[str, Path]:
    """Each unit as Ansible renders it from the role's defaults and vars."""
    out = tmp_path_factory.mktemp("units")
    tasks = []
    for role, (template, unit) in UNITS.items():
        base = REPO / "roles" / role
        tasks.append({"ansible.builtin.include_vars": str(base / "defaults" / "main.yml")})
        tasks.append({"ansible.builtin.include_vars": str(base / "vars" / "main.yml")})
        tasks.append({"ansible.builtin.template": {
            "src": str(base / "templates" / template),
            "dest": str(out / unit), "mode": "0644"}})  # fmt: skip
    play = [{"hosts": "localhost", "connection": "local", "gather_facts": False,
             "vars": dict(FACTS, ansible_python_interpreter=sys.executable,
                          ansible_facts={"architecture": "x86_64", "distribution": "Debian"}),
             "tasks": tasks}]  # fmt: skip
    (out / "render.yml").write_text(json.dumps(play))
    stock = out / "etc/systemd/system/nginx.service"
    (stock.parent / "nginx.service.d").mkdir(parents=True)
    stock.write_text(STOCK_NGINX)
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    run = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(out / "render.yml")],
        capture_output=True, text=True, env=env, cwd=REPO, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    return {role: out / unit for role, (_, unit) in UNITS.items()}


def _exposure(unit: Path) -> float:
    run = _systemd_analyze(unit)
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", run.stdout + run.stderr)
    assert found, run.stdout + run.stderr
    return float(found.group(1))


@pytest.mark.parametrize("role", sorted(UNITS))
def test_unit_exposure_is_below_four(rendered: dict[str, Path], role: str) -> None:
    exposure = _exposure(rendered[role])
    assert exposure < MAX_EXPOSURE, f"{rendered[role].name} is rated {exposure}"


@pytest.mark.parametrize("role", sorted(UNITS))
def test_unit_sets_the_resource_limits(rendered: dict[str, Path], role: str) -> None:
    text = rendered[role].read_text()
    assert re.search(r"^LimitNOFILE=65536$", text, re.MULTILINE), text
    assert re.search(r"^MemoryMax=90%$", text, re.MULTILINE), text
    assert re.search(r"^TasksMax=\d+$", text, re.MULTILINE), text


@pytest.mark.parametrize("role", sorted(UNITS))
def test_unit_has_no_directive_systemd_does_not_know(
    rendered: dict[str, Path], role: str
) -> None:
    """Every directive is one systemd 252 knows (a typo would silently weaken the unit)."""
    run = _systemd_analyze(rendered[role])
    assert "Unknown key" not in run.stderr and "Unknown lvalue" not in run.stderr, run.stderr


@pytest.mark.parametrize("role", sorted(UNITS))
def test_unit_restarts_a_killed_service(rendered: dict[str, Path], role: str) -> None:
    """A kill -9 is a failure: every unit (nginx's stock one too, through the drop-in) restarts."""
    text = rendered[role].read_text()
    assert re.search(r"^Restart=(always|on-failure)$", text, re.MULTILINE), text
    assert re.search(r"^RestartSec=[1-9]\d*$", text, re.MULTILINE), text
