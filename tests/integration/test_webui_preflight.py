"""playbooks/webui.yml refuses bad input with one clear sentence and leaves the machine as it was.

Runs against a bare container of the aistack image (project t-webui, no network needed: the
role must stop in its preflight, before it installs anything). The full install, idempotence,
the stale-setting repair and the voice check run in the molecule scenario open_webui.
"""

from __future__ import annotations

import pytest
from incus_harness import container_fixture, incus_exec, play_on, recap

pytestmark = pytest.mark.incus

PROJECT = "t-webui"
INSTANCE = "t-webui-pre"
machine = container_fixture(PROJECT, INSTANCE)


def _apply(machine: str, tmp_path, **overrides) -> tuple[int, str]:
    return play_on(
        PROJECT, machine, tmp_path, "playbooks/webui.yml", overrides, group="open_webui",
        aistack_instance={"name": machine, "ip": "10.204.0.40"},
        open_webui_ollama_base_url="http://10.204.0.10:11434",
        open_webui_stt_base_url="http://10.204.0.10:8000/v1",
    )


def _untouched(machine: str) -> list[str]:
    """What the role would have left behind had it gone past its checks."""
    probes = {
        "/opt/open-webui": "test -e /opt/open-webui",
        "/var/lib/open-webui": "test -e /var/lib/open-webui",
        "open-webui.service": "test -e /etc/systemd/system/open-webui.service",
        "user open-webui": "getent passwd open-webui",
        "/etc/open-webui": "test -e /etc/open-webui",
    }
    return [
        name for name, cmd in probes.items() if incus_exec(PROJECT, machine, cmd).returncode == 0
    ]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"open_webui_stt_base_url": "kitchen-box:8000"},
         "open_webui_stt_base_url is 'kitchen-box:8000'; it must be empty or http(s)://host[:port]/v1"),
        ({"open_webui_ollama_base_url": "10.0.0.5:11434"},
         "open_webui_ollama_base_url is '10.0.0.5:11434'"),
        ({"open_webui_port": 70000}, "open_webui_port is '70000'; use a TCP port from 1 to 65535"),
        ({"open_webui_version": "latest"},
         "open_webui_version is 'latest'; give a release as X.Y.Z"),
        ({"open_webui_stt_host": "ghost"},
         "open_webui_stt_host is 'ghost', which is not a machine of this inventory"),
        ({"open_webui_python": "/usr/bin/python3.13"},
         "needs Python 3.11 or 3.12, but /usr/bin/python3.13 is missing"),
        ({"open_webui_stt_engine": "whisper"}, "open_webui_stt_engine"),
    ],
    ids=["stt-url", "ollama-url", "port", "version", "stt-host", "python", "engine"],
)
def test_bad_input_is_refused_with_a_clear_message_and_changes_nothing(
    machine, tmp_path, overrides, message
):
    rc, output = _apply(machine, tmp_path, **overrides)
    flat = " ".join(output.split())
    assert rc != 0, output[-3000:]
    assert message in flat, output[-3000:]
    assert "Traceback" not in output
    assert recap(output)[machine]["changed"] == 0
    assert _untouched(machine) == []
