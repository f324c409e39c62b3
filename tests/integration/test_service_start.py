"""The internal role service_common, which ollama_server, stt_server and open_webui share:
a service that never answers stops the run with the reason and the end of its journal; one
that answers is started once and a second run changes nothing. Runs on a bare container of
the aistack image (project t-svc); the roles' own scenarios run it for the real services."""

from __future__ import annotations

import pytest
from incus_harness import container_fixture, incus_exec, play_on, recap

pytestmark = pytest.mark.incus

PROJECT = "t-svc"
INSTANCE = "t-svc-1"
machine = container_fixture(PROJECT, INSTANCE)


def _run(machine: str, tmp_path, unit: str, command: str) -> tuple[int, str]:
    extra = {"t_svc_unit": unit, "t_svc_command": command}
    play = "tests/integration/fixtures/service_start.yml"
    return play_on(PROJECT, machine, tmp_path, play, extra)


def test_a_service_that_never_answers_fails_with_its_journal(machine, tmp_path):
    rc, output = _run(machine, tmp_path, "t-svc-mute.service",
                      "/bin/sh -c 'echo t-svc says it is stuck; exec sleep 600'")
    flat = " ".join(output.split())
    assert rc != 0, output[-3000:]
    assert (f"The test service on {machine} did not become ready at "
            "http://127.0.0.1:8765/ within 6 s") in flat, output[-3000:]
    assert "Last lines of `journalctl -u t-svc-mute.service`:" in flat
    assert "t-svc says it is stuck" in flat, output[-3000:]


def test_a_service_that_answers_starts_once(machine, tmp_path):
    unit = "t-svc-web.service"
    command = "/usr/bin/python3 -m http.server 8765 --bind 127.0.0.1 --directory /"
    incus_exec(PROJECT, machine, "systemctl stop t-svc-mute.service")
    rc, output = _run(machine, tmp_path, unit, command)
    assert rc == 0, output[-3000:]
    assert incus_exec(PROJECT, machine, f"systemctl is-active {unit}").returncode == 0
    assert incus_exec(PROJECT, machine, f"systemctl is-enabled {unit}").returncode == 0
    account = incus_exec(PROJECT, machine, "getent passwd t-svc").stdout
    assert account.strip().endswith(":/var/lib/t-svc:/usr/sbin/nologin"), account

    rc, output = _run(machine, tmp_path, unit, command)
    assert rc == 0, output[-3000:]
    assert recap(output)[machine]["changed"] == 0, output[-3000:]
