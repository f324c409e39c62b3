"""A backup outlives the stack and the controller's state: backup, `make destroy`, delete
`.aistack/`, `make apply` from nothing, `make restore`. The chat made before is there, the
old administrator password signs in, the CA file is byte-identical and a client with the
old STT key transcribes (the official `openai` client, through the front door).

It runs after test_faults.py (pytest takes the files in name order) because it replaces the
stack the other tests use."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from .webui import (
    ADMIN_EMAIL,
    SENTENCE,
    admin_password,
    admin_token,
    chat_title,
    new_chat,
    paths,
    sign_in,
    stt_key,
    transcribe_through_the_door,
    words,
)

pytestmark = [pytest.mark.faults, pytest.mark.restore]


def test_backup_survives_destroy_and_the_loss_of_the_controller_state(stack) -> None:
    checkout = stack["checkout"]
    state = paths(checkout)
    ca, password, key = state["ca"].read_bytes(), admin_password(checkout), stt_key(checkout)
    chat_id = new_chat(checkout, admin_token(checkout), "made before the backup")

    backup = checkout.make("backup")
    assert backup.returncode == 0, backup.output[-3000:]
    assert password not in backup.output and key not in backup.output
    archive = Path(re.search(r"backup written: (\S+)", backup.output).group(1))
    assert archive.stat().st_mode & 0o777 == 0o600
    assert ".aistack" not in archive.parts

    assert checkout.make("destroy", "FORCE=1").returncode == 0
    shutil.rmtree(checkout.path / ".aistack")
    again = checkout.make("apply", stack["args"])
    assert again.returncode == 0, again.output[-6000:]
    assert state["ca"].read_bytes() != ca  # a new stack, a new CA: the old one is gone
    assert admin_password(checkout) != password and stt_key(checkout) != key

    restored = checkout.make("restore", f"BACKUP={archive}")
    assert restored.returncode == 0, restored.output[-6000:]
    assert password not in restored.output and key not in restored.output
    assert state["ca"].read_bytes() == ca
    signin = sign_in(checkout, ADMIN_EMAIL, password)  # the door verifies with the old CA
    assert signin.status_code == 200 and signin.json()["role"] == "admin", signin.text
    assert chat_title(checkout, signin.json()["token"], chat_id) == "made before the backup"
    assert words(transcribe_through_the_door(checkout, key)) == words(SENTENCE)
