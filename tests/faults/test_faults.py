"""Faults the stack must survive by itself, on its own stack (conftest.py), with the real
services: a kill -9 of each service's main process, an `incus restart` of each container,
then a backup that outlives the controller's state.

Each service must answer again within the bound docs/operations.md gives for it, and a
request in flight at the fault must end (an error or an answer), never hang. The measured
times go to tests/output/faults-recovery.json (docs/operations.md quotes them).

The last test destroys the stack, deletes `.aistack/`, applies again from nothing and
restores the backup: the chat made before is there, the old administrator password signs
in, the CA file is byte-identical and a client with the old STT key transcribes.
"""

from __future__ import annotations

import json
import re
import shutil
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.helpers.checkout import ROOT
from tests.helpers.speech import synthesize_wav

from .conftest import AI, AI_IP, DOOR_PORT, DOOR_STT_PORT, PROJECT, WEB, WEB_IP
from .recovery import (
    Service,
    incus_exec,
    main_pid,
    open_request,
    request_outcome,
    wait_until_back,
)

pytestmark = pytest.mark.faults

SENTENCE = "please turn on the kitchen lights"
ADMIN_EMAIL = "admin@aistack.lan"
RESULTS = ROOT / "tests" / "output" / "faults-recovery.json"
SERVICES = [
    Service("aistack-stt", AI, "aistack-stt.service", AI_IP, 8000,
            f"http://{AI_IP}:8000/health/ready", bound_s=60),
    Service("Ollama", AI, "ollama.service", AI_IP, 11434,
            f"http://{AI_IP}:11434/api/version", bound_s=30),
    Service("Open WebUI", WEB, "open-webui.service", WEB_IP, 8080,
            f"http://{WEB_IP}:8080/health", bound_s=90),
    Service("front door (nginx)", WEB, "nginx.service", "127.0.0.1", DOOR_PORT,
            f"https://127.0.0.1:{DOOR_PORT}/health", bound_s=30, tls=True),
]  # fmt: skip
# An in-flight request must end within this; a hang is anything longer.
IN_FLIGHT_LIMIT_S = 60
# After `incus restart` returned, every service of the machine answers within this.
CONTAINER_BOUND_S = 120


def _record(kind: str, name: str, seconds: float) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data.setdefault(kind, {})[name] = round(seconds, 1)
    RESULTS.write_text(json.dumps(data, indent=2) + "\n")


def _paths(checkout) -> dict[str, Path]:
    state = checkout.path / ".aistack"
    return {
        "ca": state / "front-door" / "ca.crt",
        "password": state / f"open-webui-admin-{WEB}.password",
        "stt_key": state / "secrets" / f"stt_api_key-{AI}",
    }


def _door(checkout) -> ssl.SSLContext:
    """Trust in the stack's CA, as a device that installed it has (hostname not checked:
    the door is reached on 127.0.0.1, which the certificate need not name)."""
    context = ssl.create_default_context(cafile=str(_paths(checkout)["ca"]))
    context.check_hostname = False
    return context


def _sign_in(checkout, password: str) -> httpx.Response:
    return httpx.post(
        f"https://127.0.0.1:{DOOR_PORT}/api/v1/auths/signin",
        json={"email": ADMIN_EMAIL, "password": password},
        verify=_door(checkout), timeout=60,
    )  # fmt: skip


def _words(text: str) -> list[str]:
    return "".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text).split()


def _transcribe_through_the_door(checkout, key: str) -> httpx.Response:
    return httpx.post(
        f"https://127.0.0.1:{DOOR_STT_PORT}/v1/audio/transcriptions",
        headers={"Authorization": f"Bearer {key}"},
        files={"file": ("command.wav", synthesize_wav(SENTENCE), "audio/wav")},
        data={"model": "whisper-1"},
        verify=_door(checkout), timeout=180,
    )  # fmt: skip


def test_the_stack_is_up_and_every_service_answers(stack) -> None:
    checkout = stack["checkout"]
    assert "NOT ANSWERING" not in stack["apply"].output
    for service in SERVICES:
        assert wait_until_back(service, _door(checkout), old_pid=-1, limit_s=60) is not None, (
            service.name
        )


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_kill_9_of_the_main_process_and_the_service_comes_back(stack, service) -> None:
    verify = _door(stack["checkout"])
    old = main_pid(service)
    assert old > 0, f"{service.unit} is not running"
    in_flight = open_request(service, verify)
    incus_exec(service.machine, "kill", "-9", str(old))
    outcome = request_outcome(in_flight, IN_FLIGHT_LIMIT_S)
    back = wait_until_back(service, verify, old, limit_s=service.bound_s * 3)
    assert outcome != "hung", f"a request in flight to {service.name} hung after kill -9"
    assert back is not None, f"{service.name} did not come back after kill -9"
    _record("kill -9", service.name, back)
    assert back <= service.bound_s, f"{service.name} came back after {back:.1f} s"


@pytest.mark.parametrize("machine", [AI, WEB])
def test_incus_restart_of_a_container_and_its_services_come_back(stack, machine) -> None:
    verify = _door(stack["checkout"])
    services = [s for s in SERVICES if s.machine == machine]
    old = {s.name: main_pid(s) for s in services}
    in_flight = [open_request(s, verify) for s in services]
    subprocess.run(["incus", "restart", "--project", PROJECT, machine], check=True, timeout=300)
    outcomes = [request_outcome(sock, IN_FLIGHT_LIMIT_S) for sock in in_flight]
    for service in services:
        back = wait_until_back(service, verify, old[service.name], limit_s=CONTAINER_BOUND_S * 2)
        assert back is not None, f"{service.name} did not come back after incus restart"
        _record(f"incus restart {machine}", service.name, back)
        assert back <= CONTAINER_BOUND_S, f"{service.name} answered after {back:.1f} s"
    assert "hung" not in outcomes, outcomes


def test_a_damaged_backup_is_refused_and_nothing_changes(stack, tmp_path) -> None:
    checkout = stack["checkout"]
    made = checkout.make("backup", f"BACKUP={tmp_path / 'good.tar.gz'}")
    assert made.returncode == 0, made.output[-3000:]
    data = bytearray((tmp_path / "good.tar.gz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "bad.tar.gz").write_bytes(bytes(data))
    before = {name: path.read_bytes() for name, path in _paths(checkout).items()}
    result = checkout.make("restore", f"BACKUP={tmp_path / 'bad.tar.gz'}")
    assert result.returncode != 0
    assert "is damaged" in result.output
    assert "PLAY [" not in result.output  # refused before any play ran
    assert {name: path.read_bytes() for name, path in _paths(checkout).items()} == before


@pytest.mark.restore
def test_backup_survives_destroy_and_the_loss_of_the_controller_state(stack) -> None:
    checkout = stack["checkout"]
    paths = _paths(checkout)
    ca, password = paths["ca"].read_bytes(), paths["password"].read_text().strip()
    stt_key = paths["stt_key"].read_text().split()[0]
    token = _sign_in(checkout, password).json()["token"]
    chat = httpx.post(
        f"https://127.0.0.1:{DOOR_PORT}/api/v1/chats/new",
        json={"chat": {"title": "made before the backup", "messages": []}},
        headers={"Authorization": f"Bearer {token}"}, verify=_door(checkout), timeout=60,
    )  # fmt: skip
    assert chat.status_code == 200, chat.text
    chat_id = chat.json()["id"]

    backup = checkout.make("backup")
    assert backup.returncode == 0, backup.output[-3000:]
    assert password not in backup.output and stt_key not in backup.output
    archive = Path(re.search(r"backup written: (\S+)", backup.output).group(1))
    assert archive.stat().st_mode & 0o777 == 0o600
    assert ".aistack" not in archive.parts

    assert checkout.make("destroy", "FORCE=1").returncode == 0
    shutil.rmtree(checkout.path / ".aistack")
    again = checkout.make("apply", stack["args"])
    assert again.returncode == 0, again.output[-6000:]
    assert paths["ca"].read_bytes() != ca  # a new stack, a new CA: the old one is gone

    restored = checkout.make("restore", f"BACKUP={archive}")
    assert restored.returncode == 0, restored.output[-6000:]
    assert password not in restored.output and stt_key not in restored.output
    assert paths["ca"].read_bytes() == ca
    signin = _sign_in(checkout, password)  # the door's certificate verifies with the old CA
    assert signin.status_code == 200 and signin.json()["role"] == "admin", signin.text
    found = httpx.get(
        f"https://127.0.0.1:{DOOR_PORT}/api/v1/chats/{chat_id}",
        headers={"Authorization": f"Bearer {signin.json()['token']}"},
        verify=_door(checkout), timeout=60,
    )  # fmt: skip
    assert found.status_code == 200 and found.json()["title"] == "made before the backup"
    heard = _transcribe_through_the_door(checkout, stt_key)
    assert heard.status_code == 200, heard.text
    assert _words(heard.json()["text"]) == _words(SENTENCE)
