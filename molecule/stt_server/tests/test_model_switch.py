"""The contract of `make apply-stt`: edit host_vars, run the play, the service follows.

The play runs with an inventory laid out like the generator's (inventory file plus
host_vars/<machine>.yml), so the edit is exactly the one a user makes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import openai
import pytest
import yaml
from conftest import ROOT, Target, health, speak, words


@pytest.fixture(scope="module")
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


def _inventory(tmp: Path, target: Target, stt_source: Path, **changes: object) -> Path:
    inv = tmp / "inventory"
    (inv / "host_vars").mkdir(parents=True, exist_ok=True)
    (inv / "hosts.yml").write_text(
        yaml.safe_dump(
            {
                "all": {
                    "vars": {
                        "ansible_connection": "community.general.incus",
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
        "stt_server_wheel_dir": str(ROOT / ".cache" / "stt-wheel"),
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


def _main_pid(host) -> str:
    return host.check_output("systemctl show --value -p MainPID aistack-stt")


@pytest.fixture()
def restore(target, tmp_path, stt_source):
    """Put the scenario's own host_vars back afterwards, so verify can run again."""
    yield
    apply_stt(_inventory(tmp_path / "restore", target, stt_source))
    assert health(target)["model"] == target.base_host_vars["stt_server_model"]


def test_switching_model_and_quantization_in_host_vars_takes_effect(
    host, target, tmp_path, speech_dir, stt_source, restore
):
    before = _main_pid(host)

    # tiny.en -> multilingual base: the service restarts and reports the new model.
    inv = _inventory(tmp_path, target, stt_source, stt_server_model="base")
    assert restarted(apply_stt(inv))
    state = health(target)
    assert (state["status"], state["model"], state["compute_type"]) == ("ok", "base", "int8")
    switched = _main_pid(host)
    assert switched != before

    # A French sentence is now recognised as French.
    clip = speak(
        "Bonjour, je voudrais réserver une table pour deux personnes ce soir.",
        "fr",
        speech_dir / "table.wav",
    )
    client = openai.OpenAI(base_url=f"{target.url}/v1", api_key="not-needed", timeout=120)
    with clip.open("rb") as audio:
        result = client.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format="verbose_json"
        )
    assert result.language in ("fr", "french")
    assert {"bonjour", "table", "soir"} <= set(words(result.text))

    # Nothing changed: nothing to do, and the service is not restarted.
    assert apply_stt(inv) == []
    assert _main_pid(host) == switched

    # The quantization follows host_vars too.
    inv = _inventory(
        tmp_path, target, stt_source, stt_server_model="base", stt_server_quantization="float32"
    )
    assert restarted(apply_stt(inv))
    state = health(target)
    assert (state["model"], state["compute_type"]) == ("base", "float32")


def test_unreachable_hub_stops_the_play_naming_the_options_and_keeps_the_service(
    host, target, tmp_path, stt_source
):
    before = (_main_pid(host), health(target)["model"])
    inv = _inventory(
        tmp_path,
        target,
        stt_source,
        stt_server_model="small",
        stt_server_model_source="hub",
        stt_server_hub_timeout=5,
    )
    result = run_stt_play(inv)
    assert result.returncode != 0
    out = re.sub(r"\s+", " ", result.stdout)
    assert "stt_server_model_source is hub, but model small" in out
    for option in ("stt_server_hub_endpoint", "stt_server_model_local_path", "tiny.en, base"):
        assert option in out
    assert "Traceback" not in result.stdout + result.stderr
    # The running service was left alone: same process, same model.
    assert (_main_pid(host), health(target)["model"]) == before
