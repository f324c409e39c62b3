"""Filters of the stt_server role: which device, compute type and model the service runs with.

The choice lives here, not in Jinja spread over tasks, so it is tested without a GPU
(tests/unit/test_stt_server_runtime.py) and every wrong combination is refused with a sentence
that names the variable to change.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

from ansible.errors import AnsibleFilterError
from ansible.utils.display import Display


def _engine_module(relative: str):
    """A standard-library-only module of the engine (under stt/src/aistack_stt/), loaded by
    path from the collection's stt/ tree: the controller runs this plugin without the engine's
    dependencies installed, yet the role and the engine share one table."""
    name = "aistack_stt_for_roles_" + relative.replace("/", "_").removesuffix(".py")
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[2] / "stt/src/aistack_stt" / relative
        spec = spec_from_file_location(name, path)
        module = module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while the file loads
        spec.loader.exec_module(module)
    return sys.modules[name]


# The devices and CTranslate2 compute types the engine accepts, and what "default"/"auto"
# (like empty) mean on each device: one list, stt/src/aistack_stt/compute.py.
_COMPUTE = _engine_module("compute.py")
DEVICES = _COMPUTE.DEVICES
COMPUTE_TYPES = _COMPUTE.COMPUTE_TYPES
# Types CTranslate2 cannot run on a CPU (it has no half-precision kernels there).
GPU_ONLY_COMPUTE_TYPES = ("float16", "bfloat16", "int8_float16", "int8_bfloat16")
DEFAULT_COMPUTE_TYPE = _COMPUTE.DEFAULT_COMPUTE_TYPE
# The default compute type on CUDA by card (docs/operations.md#gpu-sharing has the table):
# (lowest compute capability, least memory in MiB, compute type), first match wins. int8 needs
# compute capability 6.1 (DP4A); float16 is fast from 7.0 (tensor cores; Pascal's consumer
# cards run it at a fraction of float32); a card under 10 GiB (8 GB) gets int8 weights so
# that an LLM fits beside Whisper.
CARD_COMPUTE_TYPES = (
    (7.0, 10 * 1024, "float16"),
    (7.0, 0, "int8_float16"),
    (6.1, 0, "int8_float32"),
    (0.0, 0, "float32"),
)


def card_compute_type(card: dict | None) -> str:
    """The default compute type for a card {name, compute_cap, memory_mib} from nvidia-smi;
    float16 when the card could not be read (older drivers lack compute_cap)."""
    try:
        capability = float((card or {}).get("compute_cap"))
        memory = float((card or {}).get("memory_mib"))
    except (TypeError, ValueError):
        return DEFAULT_COMPUTE_TYPE["cuda"]
    return next(t for cap, mib, t in CARD_COMPUTE_TYPES if capability >= cap and memory >= mib)


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
    card: dict | None = None,
) -> Runtime:
    """Resolve `auto` and empty settings against what the container really has (`card`:
    the GPU nvidia-smi reports, for the compute type by card)."""
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
    default = card_compute_type(card) if resolved == "cuda" else DEFAULT_COMPUTE_TYPE[resolved]
    compute_type = quantization or default
    if resolved == "cpu" and compute_type in GPU_ONLY_COMPUTE_TYPES:
        raise ValueError(
            f"stt_server_quantization {compute_type} needs an NVIDIA GPU, and this service runs "
            "on the CPU; use int8 (fastest on CPU), int8_float32 or float32"
        )
    if not model:
        model = default_model_gpu if resolved == "cuda" else default_model_cpu
    return Runtime(device=resolved, compute_type=compute_type, model=model)


def stt_server_runtime(gpu_found: bool, *args, **kwargs) -> dict:
    """Jinja face of choose_runtime (same arguments after `gpu_found`): a dict with device,
    compute_type and model; a wrong setting is the filter's error, with its sentence."""
    try:
        runtime = choose_runtime(bool(gpu_found), *args, **kwargs)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc)) from None
    return asdict(runtime)


def parse_card(line: str) -> dict:
    """`nvidia-smi --query-gpu=name,compute_cap,memory.total --format=csv,noheader,nounits`'s
    first line as {name, compute_cap, memory_mib}; {} when it says nothing usable."""
    parts = [p.strip() for p in (line or "").strip().splitlines()[0].split(",")] if line else []
    if len(parts) != 3:
        return {}
    return {"name": parts[0], "compute_cap": parts[1], "memory_mib": parts[2]}


def stt_server_vram_need_mib(model: str, compute_type: str = "", margin_mib: int = 512) -> int:
    """MiB a Whisper model takes on the GPU in aistack-stt (first model: CUDA context
    included) plus the margin: what Ollama keeps free for it (OLLAMA_GPU_OVERHEAD)."""
    compute_type = (compute_type or "").strip()
    if compute_type in ("", "auto", "default"):
        compute_type = DEFAULT_COMPUTE_TYPE["cuda"]
    if compute_type not in COMPUTE_TYPES:
        raise AnsibleFilterError(
            f"compute type {compute_type!r} is unknown; use one of {', '.join(COMPUTE_TYPES[2:])}"
        )
    estimate = _engine_module("vram/estimate.py").estimate(str(model), None, compute_type)
    return int(estimate.total_mib) + int(margin_mib)


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
            "stt_server_card": parse_card,
            "stt_server_vram_need_mib": stt_server_vram_need_mib,
            "stt_server_fallback_model": stt_server_fallback_model,
            "stt_server_warn": stt_server_warn,
        }
