"""docs/architecture.md maps the generator: every module of src/aistack/ has a row, and
every row names a module that exists, so the README → architecture → module hop holds."""

from __future__ import annotations

import re

from generator_support import REPO

PACKAGE = REPO / "src" / "aistack"
LIMIT = 400


def _generator_table() -> str:
    text = (REPO / "docs" / "architecture.md").read_text()
    start = text.index("## The generator: where each behaviour lives")
    return text[start : text.index("\n## ", start + 1)]


def _modules() -> set[str]:
    """Every module, a subpackage's as `backup/archive.py`."""
    return {
        p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if p.name != "__init__.py"
    }


def test_architecture_names_every_generator_module() -> None:
    table = _generator_table()
    missing = sorted(m for m in _modules() if f"| `{m}` |" not in table)
    assert not missing, f"docs/architecture.md's generator table does not name {missing}"


def test_architecture_names_no_module_that_is_gone() -> None:
    rows = set(re.findall(r"^\| `([a-z_/]+\.py)` \|", _generator_table(), re.MULTILINE))
    assert rows, "the generator table has no module rows"
    assert rows <= _modules(), f"rows for missing modules: {sorted(rows - _modules())}"


def test_no_generator_module_passes_the_size_limit() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    over = {name: lines for name, lines in sizes.items() if lines > LIMIT}
    assert not over, f"modules over {LIMIT} lines; split them by job: {over}"
