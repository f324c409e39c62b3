"""Faults the stack must survive by itself, on its own stack (conftest.py), with the real
services: an Open WebUI upgrade (and a refused downgrade), a kill -9 of each service's main
process, an `incus restart` of each container, and a damaged backup refused. test_restore.py
then destroys the stack and restores a backup. (A restart of the Incus daemon is
tests/fresh_host's: there it is the host's own `systemctl restart incus`, and no other test
shares that daemon.)

Each service must answer again within the bound docs/operations.md gives for it, and a
request in flight at the fault must end (an error or an answer), never hang. The measured
times go to tests/output/faults-recovery.json (docs/operations.md quotes them).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.helpers.checkout import ROOT

from .conftest import OLD_WEBUI, PINNED_WEBUI
from .layout import AI, AI_IP, DOOR_PORT, PROJECT, WEB, WEB_IP
from .previous import PREVIOUS, changed_tasks, roles_changed_since
from .recovery import (
    Service,
    incus_exec,
    main_pid,
    open_request,
    request_outcome,
    wait_until_back,
)
from .webui import (
    ADMIN_EMAIL,
    admin_password,
    admin_token,
    chat_title,
    door,
    paths,
    sign_in,
    webui_version,
)

pytestmark = pytest.mark.faults

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


def test_the_stack_is_up_and_every_service_answers(stack) -> None:
    checkout = stack["checkout"]
    assert "NOT ANSWERING" not in stack["apply"].output
    for service in SERVICES:
        assert wait_until_back(service, door(checkout), old_pid=-1, limit_s=60) is not None, (
            service.name
        )


def test_the_upgrade_from_the_previous_commit_changes_only_what_changed(stack) -> None:
    """Applied by PREVIOUS, then by this tree: a task reports a change only in a role whose
    code differs between the two, or in open_webui, whose pinned version the test raised."""
    allowed = roles_changed_since(PREVIOUS) | {"open_webui"}
    changed = changed_tasks(stack["upgrade"].output)
    assert "open_webui" in changed, changed  # the new Open WebUI was installed
    unexpected = {role: tasks for role, tasks in changed.items() if role not in allowed}
    assert not unexpected, f"changed although their code did not: {unexpected}"


def test_the_upgrade_from_the_release_before_keeps_users_and_chats(stack) -> None:
    checkout, made = stack["checkout"], stack["before_upgrade"]
    assert stack["upgrade"].changed() > 0  # the new release was installed
    assert webui_version(checkout) == PINNED_WEBUI
    assert chat_title(checkout, admin_token(checkout), made["chat"]) == f"made on {OLD_WEBUI}"
    user = sign_in(checkout, made["user"]["email"], made["user"]["password"])
    assert user.status_code == 200 and user.json()["role"] == "user", user.text


def test_a_downgrade_is_refused_before_anything_changes(stack) -> None:
    checkout = stack["checkout"]
    refused = checkout.make("apply-webui", f"{stack['args']} -e open_webui_version={OLD_WEBUI}")
    assert refused.returncode != 0
    assert f"Open WebUI {PINNED_WEBUI} is installed on {WEB}" in refused.output
    assert refused.changed() == 0
    assert webui_version(checkout) == PINNED_WEBUI
    assert sign_in(checkout, ADMIN_EMAIL, admin_password(checkout)).status_code == 200


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_kill_9_of_the_main_process_and_the_service_comes_back(stack, service) -> None:
    verify = door(stack["checkout"])
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
    verify = door(stack["checkout"])
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
    before = {name: path.read_bytes() for name, path in paths(checkout).items()}
    result = checkout.make("restore", f"BACKUP={tmp_path / 'bad.tar.gz'}")
    assert result.returncode != 0
    assert "is damaged" in result.output
    assert "PLAY [" not in result.output  # refused before any play ran
    assert {name: path.read_bytes() for name, path in paths(checkout).items()} == before
