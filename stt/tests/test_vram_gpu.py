"""The real NVML path on a real GPU: load a model, read NVML, see the numbers move.

Marked `gpu`: deselected (not run, not counted) unless AISTACK_STT_GPU_TESTS=1, which
bench/gpu_run.sh sets on a machine with an NVIDIA GPU. With AISTACK_STT_GPU_REPORT=FILE the
measured figures are written there as JSON for docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from aistack_stt.config import Settings
from aistack_stt.models import ModelManager
from aistack_stt.vram import NvmlReader

pytestmark = pytest.mark.gpu
MIB = 1024 * 1024


@pytest.mark.parametrize("compute_type", ["float16", "int8_float16"])
def test_nvml_sees_a_model_load_and_unload_move_free_memory(
    models_dir: Path, compute_type: str
) -> None:
    reader = NvmlReader()
    before = reader.read()
    manager = ModelManager(
        Settings(model="base", model_dir=models_dir, device="cuda", compute_type=compute_type)
    )
    assert manager.vram is not None, "on CUDA the model manager builds the real guard"
    try:
        manager.get("base")
        loaded = reader.read()
        health = manager.vram.health(manager)
        manager.get("tiny.en")
        both = reader.read()
        manager.unload("base")
        manager.unload("tiny.en")
        after = reader.read()
    finally:
        manager.close()
    taken = (before.free - loaded.free) / MIB
    report = {
        "gpu": before.name,
        "compute_type": compute_type,
        "total_mib": before.total / MIB,
        "free_before_mib": before.free / MIB,
        "base_taken_mib": taken,
        "tiny_en_taken_mib": (loaded.free - both.free) / MIB,
        "freed_after_unload_mib": (after.free - both.free) / MIB,
        "estimate_base_mib": health["tenants"]["aistack-stt"]["models"]["base"],
        "self_measured": health["tenants"]["aistack-stt"]["measured"],
    }
    print(json.dumps(report))
    if os.environ.get("AISTACK_STT_GPU_REPORT"):
        with open(os.environ["AISTACK_STT_GPU_REPORT"], "a") as out:
            out.write(json.dumps(report) + "\n")
    # base holds 141 MiB of float16 weights (71 in int8): loading it must show on the card.
    assert taken >= 50, report
    assert abs(health["free_mib"] - loaded.free / MIB) < 64, (health, report)
    # Unloading gives memory back (CTranslate2's caching allocator may keep up to 200 MB of
    # small blocks; the report says how much came back).
    assert after.free > both.free, report
