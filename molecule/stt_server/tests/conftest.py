"""Helpers for the stt_server verify step: speech made on the controller, HTTP from outside.

The container's address and project come from this scenario's molecule.yml, so the tests talk
to the service the way a user's client on the LAN would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import openai
import pytest
import yaml

SCENARIO = Path(__file__).resolve().parent.parent
ROOT = SCENARIO.parent.parent


@dataclass(frozen=True)
class Target:
    name: str
    project: str
    ip: str
    port: int
    base_host_vars: dict

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.port}"


@pytest.fixture(scope="session")
def target() -> Target:
    config = yaml.safe_load((SCENARIO / "molecule.yml").read_text())
    platform = config["platforms"][0]
    host_vars = config["provisioner"]["inventory"]["host_vars"][platform["name"]]
    return Target(
        name=platform["name"],
        project=platform["project"],
        ip=platform["ip"],
        port=int(host_vars.get("stt_server_port", 8000)),
        base_host_vars=host_vars,
    )


def health(target: Target) -> dict:
    with urllib.request.urlopen(f"{target.url}/health", timeout=10) as resp:
        return json.loads(resp.read())


def speak(text: str, voice: str, path: Path) -> Path:
    """Synthesize `text` with espeak-ng on the controller (a real voice, not a fixture file)."""
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), text], check=True)
    return path


def words(text: str) -> list[str]:
    return re.findall(r"[a-zà-ÿ']+", text.lower())


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("speech")


# -- running the stt play the way `make apply-stt` does -------------------------------------


@pytest.fixture(scope="session")
def stt_source(tmp_path_factory) -> Path:
    """A snapshot of stt/ taken once: edits to the engine while the test runs (a shared
    working tree) must not count as changes of the second, unchanged run."""
    dest = tmp_path_factory.mktemp("stt-source") / "stt"
    shutil.copytree(
        ROOT / "stt",
        dest,
        ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".venv"),
    )
    return dest


def inventory_with(tmp: Path, target: Target, stt_source: Path, **changes: object) -> Path:
    inv = tmp / "inventory"
    (inv / "host_vars").mkdir(parents=True, exist_ok=True)
    (inv / "hosts.yml").write_text(
        yaml.safe_dump(
            {
                "all": {
                    "vars": {
                        "ansible_connection": "homelab.aistack.incus",
                        "ansible_incus_project": target.project,
                        "ansible_python_interpreter": "/usr/bin/python3",
                    },
                    "children": {"stt_server": {"hosts": {target.name: {}}}},
                }
            }
        )
    )
    host_vars = {
        **target.base_host_vars,
        "stt_server_source_dir": str(stt_source),
        "stt_server_wheel_dir": str(stt_source.parent / "wheel"),
        **changes,
    }
    (inv / "host_vars" / f"{target.name}.yml").write_text(yaml.safe_dump(host_vars))
    return inv


def _collections(tmp: Path) -> Path:
    """This checkout as homelab.aistack, whatever the shared .cache symlink points at now."""
    path = tmp / "collections"
    link = path / "ansible_collections" / "homelab" / "aistack"
    if not link.is_symlink():
        link.parent.mkdir(parents=True)
        link.symlink_to(ROOT)
    return path


def run_stt_play(inv: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(_collections(inv.parent)),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    return subprocess.run(
        ["ansible-playbook", "-i", str(inv), str(ROOT / "playbooks" / "stt.yml")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


def apply_stt(inv: Path) -> list[str]:
    """Run playbooks/stt.yml as `make apply-stt` does; return the tasks that changed."""
    result = run_stt_play(inv)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    plain = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)
    recap = re.search(r"PLAY RECAP.*?changed=(\d+)", plain, re.S)
    assert recap, plain[-2000:]
    changed, task = [], ""
    for line in plain.splitlines():
        if line.startswith(("TASK [", "RUNNING HANDLER [")):
            task = line.split("[", 1)[1].rsplit("]", 1)[0]
        elif line.startswith("changed:"):
            changed.append(task)
    assert len(changed) == int(recap.group(1)), plain[-3000:]
    return changed


def restarted(changed_tasks: list[str]) -> bool:
    return any(task.endswith(": Restart aistack-stt") for task in changed_tasks)


def reloaded(changed_tasks: list[str]) -> bool:
    """The model was switched by `systemctl reload` (roles/stt_server/tasks/swap.yml)."""
    return any(task.endswith(": Ask aistack-stt to load the new model (systemctl reload)")
               for task in changed_tasks)  # fmt: skip


def main_pid(host) -> str:
    return host.check_output("systemctl show --value -p MainPID aistack-stt")


@pytest.fixture()
def restore(target, tmp_path, stt_source):
    """Put the scenario's own host_vars back afterwards, so verify can run again."""
    yield
    apply_stt(inventory_with(tmp_path / "restore", target, stt_source))
    assert health(target)["model"] == target.base_host_vars["stt_server_model"]


@dataclass
class Transcribing:
    """A client on the controller transcribing `clip` over and over (the official openai
    client, whisper-1 as Open WebUI asks, no retries) while the `with` block runs; every
    answer, or the error instead, is kept in `outcomes` as (ok, text)."""

    url: str
    clip: Path
    outcomes: list[tuple[bool, str]] = field(default_factory=list)
    _answered: threading.Condition = field(default_factory=threading.Condition)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _run(self) -> None:
        client = openai.OpenAI(base_url=f"{self.url}/v1", api_key="not-needed", timeout=120,
                               max_retries=0)  # fmt: skip
        while not self._stop.is_set():
            try:
                with self.clip.open("rb") as audio:
                    outcome = (True, client.audio.transcriptions.create(
                        model="whisper-1", file=audio).text)  # fmt: skip
            except openai.OpenAIError as exc:
                outcome = (False, f"{type(exc).__name__}: {exc}")
            with self._answered:
                self.outcomes.append(outcome)
                self._answered.notify_all()

    def wait_for(self, count: int, timeout: float = 300) -> None:
        """Until `count` requests have been answered in all (a bound, not a pace)."""
        with self._answered:
            assert self._answered.wait_for(lambda: len(self.outcomes) >= count, timeout), (
                f"only {len(self.outcomes)} of {count} requests answered"
            )

    def __enter__(self) -> Transcribing:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=180)
