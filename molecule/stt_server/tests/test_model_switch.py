"""The contract of `make apply-stt`: edit host_vars, run the play, the service follows.

The play runs with an inventory laid out like the generator's (inventory file plus
host_vars/<machine>.yml), so the edit is exactly the one a user makes.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import openai
import pytest
import yaml
from conftest import ROOT, Target, health, speak, words


def _inventory(tmp: Path, target: Target, **changes: object) -> Path:
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
    host_vars = {**target.base_host_vars, **changes}
    (inv / "host_vars" / f"{target.name}.yml").write_text(yaml.safe_dump(host_vars))
    return inv


def apply_stt(inv: Path) -> int:
    """Run playbooks/stt.yml as `make apply-stt` does; return the recap's changed count."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
    }
    result = subprocess.run(
        ["ansible-playbook", "-i", str(inv), str(ROOT / "playbooks" / "stt.yml")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    plain = re.sub(r"\x1b\[[0-9;]*m", "", result.stdout)
    recap = re.search(r"PLAY RECAP.*?changed=(\d+)", plain, re.S)
    assert recap, plain[-2000:]
    return int(recap.group(1))


def _main_pid(host) -> str:
    return host.check_output("systemctl show --value -p MainPID aistack-stt")


@pytest.fixture()
def restore(target, tmp_path):
    """Put the scenario's own host_vars back afterwards, so verify can run again."""
    yield
    apply_stt(_inventory(tmp_path / "restore", target))
    assert health(target)["model"] == target.base_host_vars["stt_server_model"]


def test_switching_model_and_quantization_in_host_vars_takes_effect(
    host, target, tmp_path, speech_dir, restore
):
    before = _main_pid(host)

    # tiny.en -> multilingual base: the service restarts and reports the new model.
    inv = _inventory(tmp_path, target, stt_server_model="base")
    assert apply_stt(inv) > 0
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
    assert apply_stt(inv) == 0
    assert _main_pid(host) == switched

    # The quantization follows host_vars too.
    inv = _inventory(tmp_path, target, stt_server_model="base", stt_server_quantization="float32")
    assert apply_stt(inv) > 0
    state = health(target)
    assert (state["model"], state["compute_type"]) == ("base", "float32")
