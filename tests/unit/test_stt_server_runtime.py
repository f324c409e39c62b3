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
