"""Secrets the stack makes for itself, kept on the controller outside the tracked tree.

The generator writes no secret value anywhere: a machine's host_vars get an
Ansible ``password`` lookup instead, which creates the key on first use in
``<inventory>/../.aistack/secrets/`` (the directory 0700, the file 0600; the
repository's .gitignore excludes it) and reads the same key on every later run.
A value the user sets in the machine's ``vars`` replaces the lookup.
"""

from __future__ import annotations

from .schema import Machine

SECRETS_DIR = ".aistack/secrets"
STT_KEY_VAR = "stt_server_api_key"
# Letters and digits only: the key travels in an HTTP header and an env file unquoted.
_LOOKUP = (
    "{{{{ lookup('ansible.builtin.password', inventory_dir ~ '/../{path}', "
    "length=40, chars=['ascii_letters', 'digits']) }}}}"
)


def stt_key_path(machine: str) -> str:
    """Where the key of an STT machine lives, relative to the output directory."""
    return f"{SECRETS_DIR}/stt_api_key-{machine}"


def generated(machine: Machine) -> dict[str, str]:
    """Secret variables of a machine, as lookups; empty where the user set them."""
    result: dict[str, str] = {}
    if "stt_server" in machine.roles and STT_KEY_VAR not in machine.vars:
        result[STT_KEY_VAR] = _LOOKUP.format(path=stt_key_path(machine.name))
    return result
