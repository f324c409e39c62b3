"""Every role documents exactly its public variables, and its page in docs/roles is current.

STYLE: every public variable is in defaults/main.yml and in meta/argument_specs.yml, and the
role pages are generated from the specs (scripts/gen-role-docs).
"""

from __future__ import annotations

import subprocess
import sys
from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen-role-docs"
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir() and (p / "tasks").is_dir())


def _gen_role_docs():
    loader = SourceFileLoader("gen_role_docs", str(SCRIPT))
    module = module_from_spec(spec_from_loader("gen_role_docs", loader))
    loader.exec_module(module)
    return module


gen = _gen_role_docs()


def _defaults(role: Path) -> dict:
    path = role / "defaults" / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def test_there_are_roles_to_check():
    assert ROLES, "no roles found under roles/"


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_defaults_and_argument_specs_name_the_same_variables(role: Path):
    options = gen.load_specs(role)["main"].get("options") or {}
    defaults = _defaults(role)
    only_in_defaults = sorted(set(defaults) - set(options))
    only_in_specs = sorted(
        k for k in set(options) - set(defaults) if not options[k].get("required")
    )
    assert not only_in_defaults, (
        f"{role.name}: in defaults/main.yml, not in argument_specs: {only_in_defaults}"
    )
    assert not only_in_specs, (
        f"{role.name}: in argument_specs, not in defaults/main.yml: {only_in_specs}"
    )


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_every_variable_has_a_type_and_a_description(role: Path):
    options = gen.load_specs(role)["main"].get("options") or {}
    missing = sorted(n for n, o in options.items() if not (o or {}).get("description"))
    untyped = sorted(n for n, o in options.items() if "type" not in (o or {}))
    assert not missing, f"{role.name}: options without a description: {missing}"
    assert not untyped, f"{role.name}: options without a type: {untyped}"


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_public_variables_carry_the_role_name(role: Path):
    options = gen.load_specs(role)["main"].get("options") or {}
    foreign = sorted(n for n in options if not n.startswith(role.name + "_"))
    assert not foreign, f"{role.name}: variables not prefixed with {role.name}_: {foreign}"


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_role_page_is_generated_from_the_current_specs(role: Path):
    page = ROOT / "docs" / "roles" / f"{role.name}.md"
    expected = gen.render_role(role.name, gen.load_specs(role))
    assert page.is_file(), f"{page.relative_to(ROOT)} is missing: run scripts/gen-role-docs"
    assert page.read_text() == expected, (
        f"{page.relative_to(ROOT)} is out of date: run scripts/gen-role-docs"
    )


def test_role_page_lists_every_variable_with_its_default():
    page = gen.render_role(
        "demo",
        {
            "main": {
                "short_description": "A demo",
                "options": {
                    "demo_port": {"type": "int", "default": 8000, "description": "The C(port)."},
                    "demo_mode": {
                        "type": "str",
                        "default": "a",
                        "choices": ["a", "b|c"],
                        "description": ["First.", "Second with O(demo_port=1)."],
                    },
                },
            }
        },
    )
    assert "| `demo_port` | int | `8000` | The `port`. |" in page
    assert "`demo_port=1`" in page
    assert '`"b\\|c"`' in page  # a pipe inside a cell cannot break the table


def test_check_mode_names_a_stale_page_and_fails(tmp_path, monkeypatch):
    role = tmp_path / "roles" / "demo"
    (role / "tasks").mkdir(parents=True)
    (role / "meta").mkdir()
    (role / "meta" / "argument_specs.yml").write_text(
        "argument_specs:\n  main:\n    options:\n      demo_x:\n        type: int\n"
        "        default: 1\n        description: X.\n"
    )
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    monkeypatch.setattr(gen, "ROLES", tmp_path / "roles")
    monkeypatch.setattr(gen, "DOCS", tmp_path / "docs" / "roles")
    assert gen.main(["--check"]) == 1
    assert gen.main([]) == 0
    assert (tmp_path / "docs" / "roles" / "demo.md").is_file()
    assert gen.main(["--check"]) == 0


def test_script_reports_a_broken_spec_without_a_traceback(tmp_path):
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    (root / "roles" / "bad" / "tasks").mkdir(parents=True)
    (root / "roles" / "bad" / "meta").mkdir()
    (root / "roles" / "bad" / "meta" / "argument_specs.yml").write_text("argument_specs: [oops\n")
    (root / "scripts" / "gen-role-docs").write_text(SCRIPT.read_text())
    result = subprocess.run(
        [sys.executable, str(root / "scripts" / "gen-role-docs"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "roles/bad/meta/argument_specs.yml is not valid YAML" in result.stderr
    assert "Traceback" not in result.stderr
