"""The documentation covers the schema, the examples are valid, the committed output is current."""

from __future__ import annotations

import re

import pytest
from generator_support import REPO, ROLES

from aistack import catalog, loader, writer
from aistack.schema import SECTIONS
from aistack.sync import SyncRequest, plan
from aistack.validate import check

DOC = REPO / "docs" / "infra-yml.md"


def doc_sections() -> dict[str, str]:
    parts = re.split(r"<!-- schema: (\w+) -->", DOC.read_text(encoding="utf-8"))
    return dict(zip(parts[1::2], parts[2::2], strict=True))


@pytest.mark.parametrize("section", sorted(SECTIONS))
def test_every_schema_field_is_documented(section: str) -> None:
    documented = doc_sections()
    assert section in documented, f"docs/infra-yml.md has no '<!-- schema: {section} -->' table"
    rows = set(re.findall(r"^\| `([a-z_]+)` \|", documented[section], flags=re.MULTILINE))
    missing = [f.name for f in SECTIONS[section] if f.name not in rows]
    assert not missing, f"docs/infra-yml.md section {section} lacks rows for {missing}"


@pytest.mark.parametrize("name", ["infra.yml", "examples/gpu-homelab.yml"])
def test_examples_are_valid(name: str) -> None:
    path = REPO / name
    checked = check(loader.load(path, name), ROLES, path.parent)
    roles = {role for machine in checked.infra.machines for role in machine.roles}
    assert {"ollama_server", "stt_server", "open_webui"} <= roles
    web = checked.wiring["web"].variables
    assert web["open_webui_stt_base_url"] == "http://10.100.10.10:8000/v1"


def test_root_example_is_cpu_only_and_gpu_example_asks_for_a_gpu() -> None:
    cpu = check(loader.load(REPO / "infra.yml"), ROLES, REPO)
    gpu = check(loader.load(REPO / "examples/gpu-homelab.yml"), ROLES, REPO)
    assert not any(m.needs_gpu for m in cpu.infra.machines)
    assert [m.name for m in gpu.infra.machines if m.needs_gpu] == ["ai"]


def test_committed_inventory_matches_infra_yml() -> None:
    """inventory/, group_vars/ and host_vars/ are reproducible from the root infra.yml."""
    result = plan(SyncRequest(infra=REPO / "infra.yml", output_dir=REPO,
                              roles=frozenset(ROLES)))
    stale = [change.rel for change in result.changes] + result.links
    assert not stale, f"run `make sync` and commit: {stale}\n{writer.diff(result)}"
    assert not result.orphans


def test_machine_roles_are_the_collection_roles_except_host_only_ones() -> None:
    roles = catalog.machine_roles(catalog.roles_dir_for(REPO / "infra.yml"))
    assert {"base_system", "ollama_server", "stt_server", "open_webui"} <= roles
    assert "incus_host" not in roles
    check(loader.load(REPO / "infra.yml"), roles, REPO)  # the example uses real roles only
