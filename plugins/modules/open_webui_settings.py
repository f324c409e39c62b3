#!/usr/bin/python
# Copyright: aistack developers
# Apache License 2.0 (see galaxy.yml)
"""Settings in Open WebUI's config table; used by the open_webui role."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: open_webui_settings
version_added: 0.1.0
short_description: Make settings stored in Open WebUI's SQLite database equal given values
description:
  - Open WebUI 0.12 keeps its admin settings in the C(config) table, one row per dotted key
    (for example C(audio.stt.engine)) with a JSON value. It seeds that table from the environment
    on first start and reads it on every request afterwards.
  - This module writes the given keys, and only those, when their stored value differs; rows of
    other keys are not touched. Nothing is written in check mode.
  - The table must exist, that is Open WebUI has started once against this database.
options:
  database:
    description: Path of Open WebUI's SQLite database (C(DATA_DIR/webui.db)).
    type: path
    required: true
  settings:
    description: Mapping of dotted config key to the value it must hold.
    type: dict
    required: true
  secret_settings:
    description:
      - Like O(settings), for values that must not show in logs (API keys). Masked in the diff.
    type: dict
    default: {}
author: aistack developers
"""

EXAMPLES = r"""
- name: Point speech to text at the STT service
  homelab.aistack.open_webui_settings:
    database: /var/lib/open-webui/webui.db
    settings:
      audio.stt.engine: openai
      audio.stt.openai.api_base_url: http://10.100.10.10:8000/v1
"""

RETURN = r"""
updated:
  description: The keys that were written (or would be, in check mode).
  type: list
  elements: str
  returned: always
"""

import json  # noqa: E402 (Ansible modules put DOCUMENTATION first)
import os  # noqa: E402
import sqlite3  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402


def _shown(key, value, secret):
    """Values as the diff shows them: secrets masked, so keys never land in logs."""
    if key in secret and value not in (None, ""):
        return "********"
    return value


def _read(conn, keys):
    marks = ",".join("?" * len(keys))
    rows = conn.execute(f"SELECT key, value FROM config WHERE key IN ({marks})", keys).fetchall()
    stored = {}
    for key, raw in rows:
        try:
            stored[key] = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            stored[key] = raw  # unreadable: different from any wanted value, so rewritten
    return stored


def main():
    module = AnsibleModule(
        argument_spec={
            "database": {"type": "path", "required": True},
            "settings": {"type": "dict", "required": True},
            "secret_settings": {"type": "dict", "default": {}, "no_log": True},
        },
        supports_check_mode=True,
    )
    database = module.params["database"]
    wanted = dict(module.params["settings"])
    secret = set(module.params["secret_settings"])
    wanted.update(module.params["secret_settings"])
    if not os.path.isfile(database):
        module.fail_json(
            msg=f"Open WebUI's database {database} does not exist: start Open WebUI once "
            "(it creates the database) before writing settings"
        )
    if not wanted:
        module.exit_json(changed=False, updated=[])

    conn = sqlite3.connect(database, timeout=30)
    try:
        table = conn.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name='config'"
        ).fetchone()
        if table is None:
            module.fail_json(
                msg=f"{database} has no config table: it is not an Open WebUI 0.12 database, "
                "or Open WebUI has not finished its first start"
            )
        keys = sorted(wanted)
        stored = _read(conn, keys)
        missing = object()
        updated = [k for k in keys if stored.get(k, missing) != wanted[k]]
        diff = {
            "before": {k: _shown(k, stored.get(k), secret) for k in updated},
            "after": {k: _shown(k, wanted[k], secret) for k in updated},
        }
        if updated and not module.check_mode:
            now = int(time.time())
            with conn:
                for key in updated:
                    value = json.dumps(wanted[key])
                    cur = conn.execute(
                        "UPDATE config SET value = ?, updated_at = ? WHERE key = ?",
                        (value, now, key),
                    )
                    if cur.rowcount == 0:
                        conn.execute(
                            "INSERT INTO config (key, value, updated_at) VALUES (?, ?, ?)",
                            (key, value, now),
                        )
    except sqlite3.Error as exc:
        module.fail_json(msg=f"cannot update the settings in {database}: {exc}")
    finally:
        conn.close()
    module.exit_json(changed=bool(updated), updated=updated, diff=diff)


if __name__ == "__main__":
    main()
