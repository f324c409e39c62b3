"""The stt_server role's choice of device, compute type and model, without a GPU.

The role asks the container for /dev/nvidia0 and nvidia-smi, then hands the answer to the
homelab.aistack.stt_server_runtime filter; these tests pin what a user gets for each setting.
"""

from __future__ import annotations

import sys
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "filter" / "stt_server.py"
_spec = spec_from_file_location("stt_server_filters", PLUGIN)
filters = module_from_spec(_spec)
sys.modules[_spec.name] = filters  # dataclasses look their module up while the file loads
_spec.loader.exec_module(filters)

runtime = filters.stt_server_runtime


def test_gpu_found_defaults_to_large_v3_turbo_in_float16_on_cuda():
    assert runtime(True) == {"device": "cuda", "compute_type": "float16", "model": "large-v3-turbo"}


def test_no_gpu_defaults_to_base_in_int8_on_cpu():
    assert runtime(False) == {"device": "cpu", "compute_type": "int8", "model": "base"}


def test_host_vars_model_and_quantization_win_over_the_defaults():
    assert runtime(False, "auto", "float32", "tiny.en") == {
        "device": "cpu",
        "compute_type": "float32",
        "model": "tiny.en",
    }
    assert runtime(True, "auto", "int8_float16", "small")["compute_type"] == "int8_float16"


def test_cpu_can_be_forced_on_a_gpu_machine():
    assert runtime(True, "cpu") == {"device": "cpu", "compute_type": "int8", "model": "base"}


def test_cuda_without_a_gpu_is_refused_with_the_way_out():
    with pytest.raises(AnsibleFilterError, match="no usable NVIDIA GPU.*stt_server_device: auto"):
        runtime(False, "cuda")


@pytest.mark.parametrize("quantization", ["float16", "bfloat16", "int8_float16", "int8_bfloat16"])
def test_half_precision_on_cpu_is_refused_naming_what_works(quantization):
    with pytest.raises(AnsibleFilterError, match=f"{quantization} needs an NVIDIA GPU.*int8"):
        runtime(False, "auto", quantization)


def test_unknown_quantization_and_device_name_the_variable():
    with pytest.raises(AnsibleFilterError, match="stt_server_quantization is 'int4'"):
        runtime(False, "auto", "int4")
    with pytest.raises(AnsibleFilterError, match="stt_server_device is 'tpu'"):
        runtime(False, "tpu")


def test_blank_settings_count_as_unset():
    assert runtime(False, " ", " ", " ") == {
        "device": "cpu",
        "compute_type": "int8",
        "model": "base",
    }


def test_fallback_keeps_english_only_models_english_only():
    assert filters.stt_server_fallback_model("small.en", ["base", "tiny.en"]) == "tiny.en"
    assert filters.stt_server_fallback_model("large-v3", ["base", "tiny.en"]) == "base"


def test_fallback_takes_any_model_when_none_of_the_same_kind_exists():
    assert filters.stt_server_fallback_model("medium.en", ["base"]) == "base"


def test_fallback_with_an_empty_catalogue_is_an_error():
    with pytest.raises(AnsibleFilterError, match="catalogue is empty"):
        filters.stt_server_fallback_model("small", [])


def _card(name: str, capability: str, memory: str) -> dict:
    return {"name": name, "compute_cap": capability, "memory_mib": memory}


@pytest.mark.parametrize(
    ("card", "expected"),
    [
        (_card("NVIDIA GeForce RTX 4090", "8.9", "24564"), "float16"),
        (_card("NVIDIA GeForce RTX 3060", "8.6", "12288"), "float16"),
        (_card("NVIDIA GeForce RTX 3070", "8.6", "8192"), "int8_float16"),
        (_card("NVIDIA GeForce GTX 1080", "6.1", "8192"), "int8_float32"),
        (_card("Tesla K80", "3.7", "11441"), "float32"),
        ({}, "float16"),  # nvidia-smi too old for compute_cap: the former default
    ],
)
def test_gpu_compute_type_defaults_by_card(card, expected):
    assert runtime(True, "auto", "", "", "large-v3-turbo", "base", card)["compute_type"] == expected


def test_a_set_quantization_wins_over_the_card_and_the_cpu_ignores_it():
    card = {"name": "NVIDIA GeForce RTX 3070", "compute_cap": "8.6", "memory_mib": "8192"}
    assert runtime(True, "auto", "float16", "", "x", "y", card)["compute_type"] == "float16"
    assert runtime(True, "cpu", "", "", "x", "y", card)["compute_type"] == "int8"


def test_nvidia_smi_query_line_is_read_as_a_card():
    line = "NVIDIA GeForce RTX 3070, 8.6, 8192\n"
    assert filters.parse_card(line) == {
        "name": "NVIDIA GeForce RTX 3070",
        "compute_cap": "8.6",
        "memory_mib": "8192",
    }
    assert filters.parse_card("") == {}
    assert filters.parse_card("Failed to initialize NVML") == {}


def test_ollama_keeps_free_what_the_engine_estimates_for_the_stt_model_plus_a_margin():
    estimate = _load_estimate()
    for model in ("tiny.en", "base", "large-v3-turbo", "large-v3"):
        for compute_type in ("float16", "int8_float16"):
            need = filters.stt_server_vram_need_mib(model, compute_type)
            assert need == estimate.estimate(model, None, compute_type).total_mib + 512
    assert filters.stt_server_vram_need_mib("large-v3-turbo", "") == (
        filters.stt_server_vram_need_mib("large-v3-turbo", "float16")
    )
    with pytest.raises(AnsibleFilterError, match="compute type 'int4' is unknown"):
        filters.stt_server_vram_need_mib("base", "int4")


def _load_estimate():
    path = PLUGIN.parents[2] / "stt/src/aistack_stt/vram/estimate.py"
    spec = spec_from_file_location("aistack_stt_estimate_for_unit_tests", path)
    module = module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
