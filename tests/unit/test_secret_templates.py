"""Every task that writes a file holding a secret keeps it out of `--diff` and the play log.

`make check` runs the playbook with `--check --diff`: a template task without `diff: false`
prints the rendered file, keys included (the STT API key in Open WebUI's environment was one).
The rule read from the roles themselves: a template or copy whose content names a secret
variable (`*api_key*`, `*password*`, `*secret*`, `*token*`) sets `diff: false` or `no_log`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SECRET_VAR = re.compile(r"\{\{[^}]*\b\w*(api_key|password|secret|token)\w*\b[^}]*\}\}", re.I)
WRITERS = ("ansible.builtin.template", "ansible.builtin.copy")


def _tasks(node) -> list[dict]:
    """Every task in a task file, blocks opened."""
    found = []
    for task in node or []:
        if not isinstance(task, dict):
            continue
        for key in ("block", "rescue", "always"):
            found += _tasks(task.get(key))
        found.append(task)
    return found


def _writers() -> list[tuple[str, dict, str]]:
    """(where, task, the text it writes) for every template/copy task of every role."""
    out = []
    for path in sorted(REPO.glob("roles/*/tasks/*.yml")):
        role = path.parents[1]
        for task in _tasks(yaml.safe_load(path.read_text())):
            for module in WRITERS:
                args = task.get(module)
                if not isinstance(args, dict):
                    continue
                text = str(args.get("content", ""))
                src = args.get("src")
                if module.endswith("template") and src and "{{" not in str(src):
                    text += (role / "templates" / src).read_text()
                out.append((f"{path.relative_to(REPO)}: {task.get('name')}", task, text))
    return out


WRITERS_FOUND = _writers()


def test_the_rule_sees_the_files_that_hold_keys() -> None:
    holding = [where for where, _, text in WRITERS_FOUND if SECRET_VAR.search(text)]
    assert any("open_webui" in w and "environment" in w for w in holding), holding
    assert any("stt_server" in w and "environment" in w for w in holding), holding


@pytest.mark.parametrize(
    ("where", "task", "text"),
    [w for w in WRITERS_FOUND if SECRET_VAR.search(w[2])],
    ids=[w[0] for w in WRITERS_FOUND if SECRET_VAR.search(w[2])],
)
def test_a_file_with_a_secret_is_written_without_diff(where: str, task: dict, text: str) -> None:
    hidden = task.get("diff") is False or task.get("no_log") is True
    names = sorted({m.group(0) for m in SECRET_VAR.finditer(text)})
    assert hidden, f"{where} writes {names} but shows it in --diff: add `diff: false`"
