"""The conventions every role follows (docs/architecture.md, "The collection"): handlers
and the topics tasks notify are capitalised sentences, every notify reaches a handler of
its role, and the preflight runs with every stage of its role and alone by its own tag."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())


def _load(path: Path) -> list:
    return yaml.safe_load(path.read_text()) or []


def _tasks(items: list):
    """Every task of a task list, blocks opened."""
    for task in items:
        yield task
        for key in ("block", "rescue", "always"):
            yield from _tasks(task.get(key) or [])


def _as_list(value) -> list[str]:
    return [value] if isinstance(value, str) else list(value or [])


def _topics(role: Path) -> set[str]:
    path = role / "handlers" / "main.yml"
    handlers = _load(path) if path.is_file() else []
    return {t for h in handlers for t in [h["name"], *_as_list(h.get("listen"))]}


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_handlers_and_their_topics_are_capitalised_sentences(role: Path):
    lower = sorted(t for t in _topics(role) if not t[:1].isupper())
    assert not lower, f"{role.name}: handler names or listen topics not capitalised: {lower}"


@pytest.mark.parametrize("role", ROLES, ids=[r.name for r in ROLES])
def test_every_notify_reaches_a_handler_of_its_role(role: Path):
    topics = _topics(role)
    unknown = sorted(
        f"{path.relative_to(ROOT)}: {topic}"
        for path in sorted((role / "tasks").glob("*.yml"))
        for task in _tasks(_load(path))
        for topic in _as_list(task.get("notify"))
        if topic not in topics
    )
    assert not unknown, f"notify topics no handler of {role.name} names or listens to: {unknown}"


@pytest.mark.parametrize(
    "role",
    [r for r in ROLES if (r / "tasks" / "preflight.yml").is_file()],
    ids=lambda r: r.name,
)
def test_preflight_runs_with_every_stage_and_alone(role: Path):
    main = _load(role / "tasks" / "main.yml")
    preflight = [t for t in main if t.get("ansible.builtin.import_tasks") == "preflight.yml"]
    assert len(preflight) == 1, f"{role.name}: tasks/main.yml must import preflight.yml once"
    tags = set(_as_list(preflight[0].get("tags")))
    stages = {t for task in main for t in _as_list(task.get("tags"))} - tags
    assert f"{role.name}_preflight" in tags, f"{role.name}: preflight lacks its own tag"
    assert not stages, f"{role.name}: preflight skipped when only these run: {sorted(stages)}"
    assert "always" not in tags
