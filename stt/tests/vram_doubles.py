"""Test doubles for the GPU memory guard (aistack_stt.vram): a pretended GPU, and the real
Ollama test double (tests/fixtures/ollama-test-double) run as a process.

`NvmlReaderTestDouble` is NOT NVML and touches no GPU. It pretends to be a card of `total_mib`
whose used memory is what its tenants hold right now: `other_mib` (a fixed stranger), the
aistack-stt models the model manager has loaded (`own_mib` per model id) and the models the
Ollama test double lists in `/api/ps` (their `size_vram`, read over HTTP). So when the guard
unloads one of its own models, or asks Ollama to unload one, the free memory it reads next
goes up exactly as it would on a card.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from aistack_stt.vram import GpuMemory
from stt_testkit import REPO

from tests.helpers.stt_server import free_port

MIB = 1024 * 1024
OLLAMA_TEST_DOUBLE = REPO / "tests" / "fixtures" / "ollama-test-double" / "ollama"


class NvmlReaderTestDouble:
    """A pretended GPU for the guard's `GpuReader` seam (see the module docstring)."""

    def __init__(
        self,
        total_mib: int,
        own_mib: dict[str, int],
        ollama_url: str | None = None,
        other_mib: int = 0,
        name: str = "NvmlReaderTestDouble (no GPU)",
    ) -> None:
        self.total_mib = total_mib
        self.own_mib = own_mib
        self.ollama_url = ollama_url
        self.other_mib = other_mib
        self.name = name
        self.models = None  # the ModelManager, attached once the app exists
        self.reads = 0

    def attach(self, models) -> None:
        self.models = models

    def own_used_mib(self) -> int:
        if self.models is None:
            return 0
        return sum(self.own_mib[m.id] for m in self.models.loaded())

    def ollama_used_mib(self) -> int:
        if self.ollama_url is None:
            return 0
        with urllib.request.urlopen(self.ollama_url + "/api/ps", timeout=5) as response:
            models = json.loads(response.read())["models"]
        return sum(m["size_vram"] for m in models) // MIB

    def read(self) -> GpuMemory:
        self.reads += 1
        used = self.other_mib + self.own_used_mib() + self.ollama_used_mib()
        free = max(0, self.total_mib - used)
        # No PIDs: as in an Incus container, the guard falls back to its own estimates.
        return GpuMemory(name=self.name, total=self.total_mib * MIB, free=free * MIB)


@dataclass
class OllamaTestDouble:
    """The Ollama test double serving on a free loopback port."""

    url: str
    process: subprocess.Popen

    def call(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")

    def load(self, name: str, keep_alive: str) -> None:
        """Pull (record) and load a model, as a chat would."""
        self.call("POST", "/api/pull", {"model": name, "stream": False})
        self.call("POST", "/api/generate", {"model": name, "keep_alive": keep_alive})

    def running(self) -> dict[str, int]:
        """Loaded model -> size_vram in MiB, from /api/ps."""
        return {m["name"]: m["size_vram"] // MIB for m in self.call("GET", "/api/ps")["models"]}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def start_ollama_test_double(models_dir: Path, vram_mib: dict[str, int]) -> OllamaTestDouble:
    port = free_port()
    env = {
        **os.environ,
        "OLLAMA_HOST": f"127.0.0.1:{port}",
        "OLLAMA_MODELS": str(models_dir),
        "OLLAMA_TEST_DOUBLE_VRAM_MIB": ",".join(f"{k}={v}" for k, v in vram_mib.items()),
    }
    process = subprocess.Popen(
        [sys.executable, str(OLLAMA_TEST_DOUBLE), "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    double = OllamaTestDouble(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            double.call("GET", "/api/version")
            return double
        except OSError:
            time.sleep(0.1)
    double.stop()
    raise RuntimeError("the Ollama test double did not start within 30 s")
