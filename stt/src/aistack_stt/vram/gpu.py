"""Reading the GPU's memory: the `GpuReader` protocol and its NVML implementation.

The guard only needs what `nvidia-smi` shows: total and free memory of the device, and what
each process holds. NVML comes from `nvidia-ml-py` (the `cuda` extra of aistack-stt), imported
the first time the reader is used, so a CPU install neither needs nor loads it. Tests use a
test double with the same protocol (stt/tests/vram_doubles.py).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

from ..errors import APIError


@dataclass(frozen=True)
class GpuMemory:
    """One reading of a device: bytes, and what each process holds (pid -> bytes).

    `processes` can be empty in a container: NVML reports host PIDs, or none at all, there.
    """

    name: str
    total: int
    free: int
    processes: dict[int, int] = field(default_factory=dict)

    @property
    def used(self) -> int:
        return self.total - self.free


class GpuReader(Protocol):
    def read(self) -> GpuMemory: ...


class NvmlReader:
    """The real reader: NVML through `nvidia-ml-py`, device `index` (CTranslate2's default 0)."""

    def __init__(self, index: int = 0) -> None:
        self.index = index
        self._lock = threading.Lock()
        self._handle = None
        self._nvml = None

    def _device(self):
        with self._lock:
            if self._handle is None:
                try:
                    import pynvml  # nvidia-ml-py; only on CUDA installs
                except ImportError:
                    raise APIError(
                        503,
                        "GPU memory cannot be read: nvidia-ml-py is not installed; install "
                        "aistack-stt[cuda] (the stt_server role does on a GPU), or set "
                        "AISTACK_STT_VRAM_GUARD=false",
                        type="server_error",
                        code="vram_unreadable",
                    ) from None
                try:
                    pynvml.nvmlInit()
                    self._handle = pynvml.nvmlDeviceGetHandleByIndex(self.index)
                except pynvml.NVMLError as exc:
                    raise APIError(
                        503,
                        f"GPU memory cannot be read: NVML says {exc} (is the NVIDIA driver "
                        "visible in this container?); or set AISTACK_STT_VRAM_GUARD=false",
                        type="server_error",
                        code="vram_unreadable",
                    ) from None
                self._nvml = pynvml
            return self._nvml, self._handle

    def read(self) -> GpuMemory:
        nvml, handle = self._device()
        memory = nvml.nvmlDeviceGetMemoryInfo(handle)
        name = nvml.nvmlDeviceGetName(handle)
        if isinstance(name, bytes):  # older bindings return bytes
            name = name.decode()
        processes: dict[int, int] = {}
        try:
            for proc in nvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if proc.usedGpuMemory is not None:
                    processes[int(proc.pid)] = int(proc.usedGpuMemory)
        except nvml.NVMLError:
            pass  # not every driver and container allows the process list
        return GpuMemory(
            name=str(name), total=int(memory.total), free=int(memory.free), processes=processes
        )
