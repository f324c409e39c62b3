"""Two checkouts that apply stacks on one host keep each other's mDNS announcements.

The incus_host role writes one avahi service file per announcement, named after the checkout
that asked for it (a hash of its path), and removes only its own files that are no longer
asked for, plus files of the older scheme that had no owner; `make destroy` removes its own
the same way (playbooks/destroy.yml includes the same tasks). Run here through a real
ansible-playbook on localhost, with the role's avahi directory pointed at a temporary one."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
STT = {"name": "aistack-stt", "type": "_wyoming._tcp", "port": 10300}
OTHER = {"name": "kitchen stt", "type": "_wyoming._tcp", "port": 10301}


def checkout(base: Path, name: str) -> Path:
    """A directory laid out like a checkout: playbooks/announce.yml runs the role's tasks."""
    play = base / name / "playbooks" / "announce.yml"
    play.parent.mkdir(parents=True)
    play.write_text(
        json.dumps(
            [
                {
                    "hosts": "localhost",
                    "connection": "local",
                    "gather_facts": False,
                    "tasks": [
                        {"ansible.builtin.include_role": {
                            "name": "homelab.aistack.incus_host",
                            "tasks_from": "mdns_files.yml"}},
                    ],
                }
            ]
        )
    )  # fmt: skip
    return base / name


def owner(path: Path) -> str:
    return hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]


def announce(repo: Path, avahi: Path, services: list[dict]) -> str:
    extra = {"_incus_host_avahi_services": str(avahi), "incus_host_mdns_services": services}
    run = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", str(repo / "playbooks/announce.yml"),
         "-e", json.dumps(extra)],
        capture_output=True, text=True, check=False, timeout=300, cwd=ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
             "ANSIBLE_PYTHON_INTERPRETER": sys.executable},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return run.stdout


def files(avahi: Path) -> set[str]:
    return {p.name for p in avahi.iterdir()}


def test_each_checkout_keeps_and_removes_only_its_own_announcements(tmp_path: Path) -> None:
    avahi = tmp_path / "avahi-services"
    avahi.mkdir()
    # Left by an earlier release (no owner in the name) and by a stack that is not here.
    (avahi / "aistack-aistack-stt.service").write_text("<service-group/>")
    (avahi / "aistack-0123abcd-somebody.service").write_text("<service-group/>")
    (avahi / "printer.service").write_text("<service-group/>")
    first, second = checkout(tmp_path, "first"), checkout(tmp_path, "second")
    mine = f"aistack-{owner(first)}-aistack-stt.service"
    theirs = f"aistack-{owner(second)}-kitchen_stt.service"

    announce(first, avahi, [STT])
    # The older file is replaced by the owned one; nobody else's is touched.
    assert files(avahi) == {mine, "aistack-0123abcd-somebody.service", "printer.service"}
    text = (avahi / mine).read_text()
    assert "<name>aistack-stt</name>" in text and "<port>10300</port>" in text

    again = announce(first, avahi, [STT])
    assert "changed=0" in again, again[-2000:]

    announce(second, avahi, [OTHER])
    assert files(avahi) == {mine, theirs, "aistack-0123abcd-somebody.service", "printer.service"}

    # The first stack stops announcing (wyoming_lan off, or make destroy): only its file goes.
    announce(first, avahi, [])
    assert files(avahi) == {theirs, "aistack-0123abcd-somebody.service", "printer.service"}
