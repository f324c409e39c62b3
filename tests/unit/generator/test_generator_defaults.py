"""A key infra.yml leaves out takes the default its schema table gives it (schema.SECTIONS is
the one place defaults are written; docs/infra-yml.md documents the same table)."""

from __future__ import annotations

from pathlib import Path

from generator_support import ROLES

from aistack import loader
from aistack.schema import default
from aistack.validate import Checked, check

MINIMAL = """\
global:
  base_subnet: "10.100"
  image_build: {}
domains:
  lab:
    subnet_id: 10
    profiles:
      small: {}
    machines:
      ai:
        ip: 10.100.10.10
"""


def _checked(text: str, tmp_path: Path) -> Checked:
    return check(loader.parse(text, "infra.yml"), ROLES, tmp_path)


def test_left_out_global_keys_take_the_schema_defaults(tmp_path: Path) -> None:
    settings = _checked(MINIMAL, tmp_path).infra.settings
    for key in ("gpu_policy", "default_image", "remote", "storage_pool", "storage_driver",
                "network_acls"):
        assert getattr(settings, key) == default("global", key), key
    assert settings.ca_certificates == tuple(default("global", "ca_certificates"))
    assert settings.image_build is not None
    for key in ("alias", "suite", "mirror"):
        assert getattr(settings.image_build, key) == default("image_build", key), key


def test_left_out_domain_profile_and_machine_keys_take_the_schema_defaults(
    tmp_path: Path,
) -> None:
    infra = _checked(MINIMAL, tmp_path).infra
    domain = infra.domains[0]
    assert domain.description == default("domain", "description")
    assert domain.ephemeral == default("domain", "ephemeral")
    assert domain.profiles["small"].description == default("profile", "description")
    machine = infra.machine("ai")
    assert machine.description == default("machine", "description")
    assert machine.type == default("machine", "type")
    # The two machine keys whose default is "inherited" take it from global and the domain.
    assert machine.image == default("global", "default_image")
    assert machine.ephemeral == domain.ephemeral


def test_an_empty_string_takes_the_default_too(tmp_path: Path) -> None:
    given = '  image_build: {suite: ""}\n  storage_pool: ""\n'
    text = MINIMAL.replace("  image_build: {}\n", given)
    settings = _checked(text, tmp_path).infra.settings
    assert settings.storage_pool == default("global", "storage_pool")
    assert settings.image_build is not None
    assert settings.image_build.suite == default("image_build", "suite")
