"""How much GPU memory a Whisper model needs before it is loaded: a table, not a guess at run time.

The need of one model on CUDA is

    weights      parameters x bytes per weight of the compute type
  + activations  float16 weights x (0.27 + 0.075 x (max_batch - 1)), twice that when the compute
                 type computes in float32 (float32, int8, int8_float32, int16)
  + context      600 MiB once per process (CUDA context, cuBLAS workspace, CTranslate2's kernels),
                 counted only for the first model this process puts on the GPU

and the guard adds `AISTACK_STT_VRAM_MARGIN_MB` on top. The factors come from faster-whisper's
published large-v2 figures on a GPU (beam 5: 4525 MB in float16, 2926 MB in int8_float16,
6090 MB in float16 with batch 8); they were not measured on this project's machines, which have
no GPU. `bench/gpu_run.sh` records the real numbers where a GPU is lent, and docs/benchmarks.md
says which is which.

A model outside the table (a hub repo or a directory) is sized from its `model.bin`, which the
CTranslate2 conversions of Whisper store in float16 (two bytes per parameter).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
CONTEXT_MIB = 600
# Millions of parameters per Whisper model family (the `.en` variants are the same size).
PARAMETERS_M: dict[str, int] = {
    "tiny": 39,
    "base": 74,
    "small": 244,
    "medium": 769,
    "large-v1": 1550,
    "large-v2": 1550,
    "large-v3": 1550,
    "large": 1550,
    "large-v3-turbo": 809,
    "turbo": 809,
    "distil-small.en": 166,
    "distil-medium.en": 394,
    "distil-large-v2": 756,
    "distil-large-v3": 756,
    "distil-large-v3.5": 756,
}
# Bytes per weight, and whether the layers compute in float32 (twice the activation memory).
_WEIGHT_BYTES = {
    "float32": (4.0, True),
    "float16": (2.0, False),
    "bfloat16": (2.0, False),
    "int16": (2.0, True),
    "int8": (1.0, True),
    "int8_float32": (1.0, True),
    "int8_float16": (1.0, False),
    "int8_bfloat16": (1.0, False),
}
_ACTIVATION_BASE = 0.27
_ACTIVATION_PER_WINDOW = 0.075


@dataclass(frozen=True)
class Estimate:
    """What one model is expected to take on the GPU, in MiB, and where the size came from."""

    model: str
    compute_type: str
    weights_mib: int
    activations_mib: int
    context_mib: int
    basis: str  # "table: base" or "model.bin: 145 MB"

    @property
    def total_mib(self) -> int:
        return self.weights_mib + self.activations_mib + self.context_mib


def family(name: str) -> str | None:
    """The table's key for a model id or directory name: `Systran/faster-whisper-base.en`,
    `base.en` and `/models/base` all mean `base`."""
    name = name.rstrip("/").rsplit("/", 1)[-1].lower()
    name = re.sub(r"^(faster-)?whisper-", "", name)
    name = re.sub(r"-ct2$", "", name)
    if name in PARAMETERS_M:
        return name
    stem = name.removesuffix(".en")
    return stem if stem in PARAMETERS_M else None


def parameters(model_id: str, path: Path | None) -> tuple[float, str]:
    """Parameters (in millions) of a model, from the table or else from its model.bin."""
    for name in (model_id, path.name if path is not None else ""):
        key = family(name) if name else None
        if key is not None:
            return float(PARAMETERS_M[key]), f"table: {key}"
    if path is not None and (path / "model.bin").is_file():
        size = (path / "model.bin").stat().st_size
        return size / 2 / 1e6, f"model.bin: {size // 1_000_000} MB"
    # Nothing to go by: the largest model, so the guard errs on the side of room.
    return float(PARAMETERS_M["large-v3"]), "unknown size, assumed large-v3"


def estimate(
    model_id: str,
    path: Path | None,
    compute_type: str,
    *,
    max_batch: int = 4,
    first_on_gpu: bool = True,
) -> Estimate:
    """The expected need of `model_id` in `compute_type` (a CTranslate2 type, resolved)."""
    params_m, basis = parameters(model_id, path)
    per_weight, float32_compute = _WEIGHT_BYTES.get(compute_type, (2.0, False))
    weights = params_m * 1e6 * per_weight / MIB
    fp16_weights = params_m * 1e6 * 2 / MIB
    activations = fp16_weights * (_ACTIVATION_BASE + _ACTIVATION_PER_WINDOW * (max_batch - 1))
    if float32_compute:
        activations *= 2
    return Estimate(
        model=model_id,
        compute_type=compute_type,
        weights_mib=round(weights),
        activations_mib=round(activations),
        context_mib=CONTEXT_MIB if first_on_gpu else 0,
        basis=basis,
    )


TABLE_MODELS = ("tiny", "base", "small", "medium", "large-v3-turbo", "large-v3")
TABLE_TYPES = ("float16", "int8_float16", "int8_float32", "float32")


def markdown_table(max_batch: int = 4) -> str:
    """The table of docs/operations.md and stt/README.md: MiB per model and compute type for the
    first model of a process (context included, margin not); a test keeps the docs equal."""
    rows = [
        "| model | " + " | ".join(f"`{t}`" for t in TABLE_TYPES) + " |",
        "|---|" + "---:|" * len(TABLE_TYPES),
    ]
    for model in TABLE_MODELS:
        cells = [str(estimate(model, None, t, max_batch=max_batch).total_mib) for t in TABLE_TYPES]
        rows.append(f"| `{model}` | " + " | ".join(cells) + " |")
    return "\n".join(rows)
