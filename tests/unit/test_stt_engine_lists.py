"""The stt_server role offers exactly the devices and compute types the engine accepts.

The engine defines them once (stt/src/aistack_stt/config.py); the role's filter plugin and
its argument_specs carry copies, because they run on the controller without the stt package.
These tests fail when one of the three drifts.
"""

from __future__ import annotations

import sys
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str, path: Path):
    spec = spec_from_file_location(name, path)
    module = module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the file loads
    spec.loader.exec_module(module)
    return module


# config.py imports only the standard library, so it loads without the engine's dependencies.
engine = _load("aistack_stt_config_for_role_tests", ROOT / "stt/src/aistack_stt/config.py")
plugin = _load("stt_server_filters_for_lists", ROOT / "plugins/filter/stt_server.py")
SPECS = yaml.safe_load((ROOT / "roles/stt_server/meta/argument_specs.yml").read_text())
OPTIONS = SPECS["argument_specs"]["main"]["options"]


def test_the_filter_plugin_knows_the_engines_devices_and_compute_types():
    assert plugin.DEVICES == engine.DEVICES
    assert plugin.COMPUTE_TYPES == engine.COMPUTE_TYPES


def test_argument_specs_offer_the_engines_devices_and_compute_types():
    assert OPTIONS["stt_server_device"]["choices"] == list(engine.DEVICES)
    # Empty leaves the choice to the role (the device's default).
    assert OPTIONS["stt_server_quantization"]["choices"] == ["", *engine.COMPUTE_TYPES]


def test_every_compute_type_the_role_offers_resolves_on_the_cpu_or_is_refused_clearly():
    for compute_type in engine.COMPUTE_TYPES:
        try:
            chosen = plugin.choose_runtime(False, "cpu", compute_type)
        except ValueError as exc:
            assert compute_type in plugin.GPU_ONLY_COMPUTE_TYPES, exc
            assert "needs an NVIDIA GPU" in str(exc)
        else:
            assert chosen.compute_type in engine.COMPUTE_TYPES
            assert chosen.compute_type != "auto"  # the service is told a concrete type


def test_the_role_installs_exactly_the_engines_cuda_extra():
    import tomllib

    extra = tomllib.loads((ROOT / "stt/pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]["cuda"]
    defaults = yaml.safe_load((ROOT / "roles/stt_server/defaults/main.yml").read_text())
    assert defaults["stt_server_cuda_packages"] == extra
    assert all("==" in p and "*" not in p for p in extra), "CUDA wheels are pinned exactly"


def test_the_role_installs_exactly_the_engines_tts_extra_and_the_tests_speak_with_it():
    import tomllib

    extras = tomllib.loads((ROOT / "stt/pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    defaults = yaml.safe_load((ROOT / "roles/stt_server/defaults/main.yml").read_text())
    assert defaults["stt_server_tts_packages"] == extras["tts"]
    assert set(extras["tts"]) <= set(extras["test"]), "the tests use the Piper the role installs"


def test_ollama_server_knows_the_engines_compute_types_for_the_stt_model_beside_it():
    specs = yaml.safe_load((ROOT / "roles/ollama_server/meta/argument_specs.yml").read_text())
    option = specs["argument_specs"]["main"]["options"]["ollama_server_stt_compute_type"]
    assert option["choices"] == ["", *engine.COMPUTE_TYPES]
