"""Sharing one GPU with Ollama: estimate, read, make room, or refuse (see guard.py).

`guard_for(settings, device, compute_type)` is what the model manager calls: a `VramGuard` on
CUDA with the guard on, `None` otherwise (CPU installs never import NVML).
"""

from __future__ import annotations

from ..config import Settings
from .estimate import Estimate, estimate, markdown_table
from .gpu import GpuMemory, GpuReader, NvmlReader
from .guard import OwnModels, Tenants, VramGuard
from .ollama import HttpOllamaClient, OllamaClient, OllamaModel, OllamaUnavailable

__all__ = [
    "Estimate",
    "GpuMemory",
    "GpuReader",
    "HttpOllamaClient",
    "NvmlReader",
    "OllamaClient",
    "OllamaModel",
    "OllamaUnavailable",
    "OwnModels",
    "Tenants",
    "VramGuard",
    "estimate",
    "guard_for",
    "markdown_table",
]


def guard_for(settings: Settings, device: str, compute_type: str) -> VramGuard | None:
    if device != "cuda" or not settings.vram.guard:
        return None
    url = settings.vram.ollama_url.strip()
    return VramGuard(
        NvmlReader(),
        HttpOllamaClient(url) if url else None,
        settings.vram,
        compute_type,
        max_batch=settings.scheduler.max_batch,
    )
