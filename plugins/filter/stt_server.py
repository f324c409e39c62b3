"""Filters of the stt_server role: which device, compute type and model the service runs with.

The choice lives here, not in Jinja spread over tasks, so it is tested without a GPU
(tests/unit/test_stt_server_runtime.py) and every wrong combination is refused with a sentence
that names the variable to change.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display

# The engine's lists (stt/src/aistack_stt/config.py), copied because this plugin runs on the
# controller without the stt package; tests/unit/test_stt_engine_lists.py keeps them equal.
DEVICES = ("auto", "cpu", "cuda")
# CTranslate2 compute types; "auto" (like empty) is the device's default.
COMPUTE_TYPES = (
    "default",
    "auto",
    "int8",
    "int8_float32",
    "int8_float16",
    "int8_bfloat16",
    "int16",
    "float16",
    "bfloat16",
    "float32",
)
# Types CTranslate2 cannot run on a CPU (it has no half-precision kernels there).
GPU_ONLY_COMPUTE_TYPES = ("float16", "bfloat16", "int8_float16", "int8_bfloat16")
DEFAULT_COMPUTE_TYPE = {"cuda": "float16", "cpu": "int8"}


@dataclass(frozen=True)
class Runtime:
    device: str
    compute_type: str
    model: str


def choose_runtime(
    gpu_found: bool,
    device: str = "auto",
    quantization: str = "",
    model: str = "",
    default_model_gpu: str = "large-v3-turbo",
    default_model_cpu: str = "base",
) -> Runtime:
    """Resolve `auto` and empty settings against what the container really has."""
    device = (device or "").strip() or "auto"
    quantization = (quantization or "").strip()
    if quantization == "auto":
        quantization = ""  # the device's default, as the engine itself resolves auto
    model = (model or "").strip()
    if device not in DEVICES:
        raise ValueError(f"stt_server_device is {device!r}; use one of {', '.join(DEVICES)}")
    if quantization and quantization not in COMPUTE_TYPES:
        raise ValueError(
            f"stt_server_quantization is {quantization!r}; use one of "
            f"{', '.join(COMPUTE_TYPES)} (or leave it empty for the device's default)"
        )
    if device == "cuda" and not gpu_found:
        raise ValueError(
            "stt_server_device is cuda, but the container has no usable NVIDIA GPU "
            "(no /dev/nvidia0, or nvidia-smi fails); give the machine a GPU in infra.yml "
            "(gpu: true) or set stt_server_device: auto"
        )
    resolved = device if device != "auto" else ("cuda" if gpu_found else "cpu")
    compute_type = quantization or DEFAULT_COMPUTE_TYPE[resolved]
    if resolved == "cpu" and compute_type in GPU_ONLY_COMPUTE_TYPES:
        raise ValueError(
            f"stt_server_quantization {compute_type} needs an NVIDIA GPU, and this service runs "
            "on the CPU; use int8 (fastest on CPU), int8_float32 or float32"
        )
    if not model:
        model = default_model_gpu if resolved == "cuda" else default_model_cpu
    return Runtime(device=resolved, compute_type=compute_type, model=model)


def stt_server_runtime(
    gpu_found: bool,
    device: str = "auto",
    quantization: str = "",
    model: str = "",
    default_model_gpu: str = "large-v3-turbo",
    default_model_cpu: str = "base",
) -> dict:
    """Jinja face of choose_runtime: a dict with device, compute_type and model."""
    try:
        runtime = choose_runtime(
            bool(gpu_found), device, quantization, model, default_model_gpu, default_model_cpu
        )
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None
    return asdict(runtime)


def pick_fallback_model(requested: str, available: list[str]) -> str:
    """The catalogue model closest to the requested one: English-only stays English-only."""
    if not available:
        raise ValueError("the PyPI model catalogue is empty")
    english = requested.endswith(".en")
    same_kind = [m for m in available if m.endswith(".en") == english]
    return sorted(same_kind or available)[0]


def stt_server_fallback_model(requested: str, available: list[str]) -> str:
    try:
        return pick_fallback_model(requested, list(available))
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None


def stt_server_warn(lines: list[str] | str) -> list[str] | str:
    """Repeat a message as an Ansible warning, which also shows in the run's summary.

    A debug line scrolls by; a model other than the one asked for must not go unnoticed.
    """
    text = " ".join(lines) if isinstance(lines, list) else str(lines)
    Display().warning(text)
    return lines


class FilterModule:
    def filters(self) -> dict:
        return {
            "stt_server_runtime": stt_server_runtime,
            "stt_server_fallback_model": stt_server_fallback_model,
            "stt_server_warn": stt_server_warn,
        }
