"""The faults test's own stack (layout.py), applied once for the whole part and destroyed at
its end. scripts/run-tests holds /tmp/aistack-incus-faults.lock around it.

The stack is first applied by the previous release of this repository (previous.py: a
commit's code in the checkout) with the Open WebUI release before the pinned one (a key below
the managed block of the web machine's host_vars, as an owner would pin it), and gets a user
and a chat there. Then the checkout gets this tree's code, the pin goes, and `make apply`
upgrades both: every other test runs on the upgraded stack, and test_faults.py checks that
the upgrade kept the user and the chat and changed only what the new code changed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.helpers.checkout import ROOT, Checkout, make_checkout, ollama_test_double_vars

from .layout import INFRA, PROJECT, WEB
from .previous import PREVIOUS, code_env, exists, switch_code
from .webui import admin_token, call, new_chat, webui_version

# The release before the pinned one (roles/open_webui/defaults/main.yml).
OLD_WEBUI = "0.12.3"
PINNED_WEBUI = str(
    yaml.safe_load((ROOT / "roles/open_webui/defaults/main.yml").read_text())["open_webui_version"]
)
END_OF_BLOCK = "# END aistack managed block\n"
USER = {"name": "Made Before", "email": "before@aistack.lan", "password": "upgrade-kept-me-1"}


def project_exists() -> bool:
    out = subprocess.run(
        ["incus", "project", "list", "--format", "json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return any(p["name"] == PROJECT for p in json.loads(out))


def _web_vars(checkout: Checkout) -> Path:
    return checkout.path / "host_vars" / f"{WEB}.yml"


@pytest.fixture(scope="session")
def checkout() -> Checkout:
    """A fresh copy under .cache/faults, its infra.yml the faults stack's."""
    copy = make_checkout(ROOT / ".cache" / "faults" / "aistack")
    # The example's generated inventory and vars go: `make sync` writes the faults stack's,
    # and a machine of the example left in the inventory would be applied too.
    for folder in ("inventory", "host_vars", "group_vars"):
        for generated in (copy.path / folder).glob("*.yml"):
            generated.unlink()
    (copy.path / "infra.yml").write_text(INFRA)
    return copy


@pytest.fixture(scope="session")
def old_stack(checkout: Checkout) -> dict:
    """`make apply` of the faults stack by the previous release, with Open WebUI OLD_WEBUI,
    from a host without it."""
    if project_exists():
        assert checkout.make("destroy", "FORCE=1").returncode == 0
    assert exists(PREVIOUS), f"commit {PREVIOUS} is not here: clone the whole history"
    switch_code(checkout, PREVIOUS)
    # `make sync` puts its block above this key; the key below the block wins.
    _web_vars(checkout).write_text(f'---\nopen_webui_version: "{OLD_WEBUI}"\n')
    extra = ollama_test_double_vars(checkout)
    args = f"ARGS=-e @{extra}"
    result = checkout.make("apply", args, env=code_env(checkout))
    assert result.returncode == 0, result.output[-6000:]
    yield {"checkout": checkout, "apply": result, "args": args}
    checkout.make("destroy", "FORCE=1", env=code_env(checkout))


@pytest.fixture(scope="session")
def made_before_upgrade(old_stack: dict) -> dict:
    """A chat of the administrator and a second account, made on OLD_WEBUI."""
    checkout = old_stack["checkout"]
    assert webui_version(checkout) == OLD_WEBUI
    token = admin_token(checkout)
    chat = new_chat(checkout, token, f"made on {OLD_WEBUI}")
    added = call(checkout, "POST", "/api/v1/auths/add", token, json={**USER, "role": "user"})
    assert added.status_code == 200, added.text
    return {"chat": chat, "user": USER}


@pytest.fixture(scope="session")
def stack(old_stack: dict, made_before_upgrade: dict) -> dict:
    """The faults stack upgraded to this tree's code and the pinned Open WebUI: the owner
    pulls, drops the pin below the block and runs `make apply`."""
    checkout = old_stack["checkout"]
    switch_code(checkout, None)
    text = _web_vars(checkout).read_text()
    _web_vars(checkout).write_text(text[: text.index(END_OF_BLOCK) + len(END_OF_BLOCK)])
    upgrade = checkout.make("apply", old_stack["args"], env=code_env(checkout))
    assert upgrade.returncode == 0, upgrade.output[-6000:]
    return {**old_stack, "upgrade": upgrade, "before_upgrade": made_before_upgrade}
