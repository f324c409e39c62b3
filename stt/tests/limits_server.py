"""`aistack-stt serve` as a process of its own, for the hostile-client tests.

A process, not an in-process server, so that its memory can be read from /proc (resident
set and its peak) without the test's own allocations in it, and so that SIGTERM reaches a
real uvicorn. Its log goes to a file: a pipe nobody reads would stall the server.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

EXE = [sys.executable, "-m", "aistack_stt.cli", "serve"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


@dataclass
class ServerProcess:
    proc: subprocess.Popen
    url: str
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss_mib(self) -> float:
        return _status(self.pid)["VmRSS"] / 1024

    def peak_mib(self) -> float:
        return _status(self.pid)["VmHWM"] / 1024

    def reset_peak(self) -> None:
        """Start the peak (VmHWM) over from the current resident set (Linux: clear_refs 5)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, **kw)

    def health(self) -> dict:
        return httpx.get(self.url + "/health", timeout=30).json()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_process(models_dir: Path, log: Path, **env: str) -> ServerProcess:
    """tiny.en on two CPU threads, no Wyoming port; `env` adds AISTACK_STT_* settings."""
    port = free_port()
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("AISTACK_STT_", "HF_ENDPOINT"))
    }
    environ.update(
        HF_HUB_OFFLINE="1",
        AISTACK_STT_HOST="127.0.0.1",
        AISTACK_STT_PORT=str(port),
        AISTACK_STT_MODEL=str(models_dir / "tiny.en"),
        AISTACK_STT_MODEL_DIR=str(models_dir),
        AISTACK_STT_DEVICE="cpu",
        AISTACK_STT_CPU_THREADS="2",
        AISTACK_STT_WYOMING_ENABLED="false",
        AISTACK_STT_LOG_LEVEL="warning",
    )
    environ.update(env)
    with log.open("w") as out:
        proc = subprocess.Popen(EXE, env=environ, stdout=out, stderr=subprocess.STDOUT)
    server = ServerProcess(proc, f"http://127.0.0.1:{port}", port, log)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if server.health()["status"] != "loading":
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    stop_process(server)
    raise RuntimeError(f"aistack-stt did not become ready:\n{server.log_text()[-3000:]}")


def stop_process(server: ServerProcess) -> None:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(timeout=30)


def flac_bomb(out: Path, seconds: int = 3600) -> Path:
    """Digital silence as FLAC with the largest blocks: an hour is about 20 KiB."""
    subprocess.run(
        [
            "ffmpeg", "-v", "error", "-y", "-f", "lavfi",
            "-i", "anullsrc=r=16000:cl=mono", "-t", str(seconds),
            "-c:a", "flac", "-sample_fmt", "s16", "-frame_size", "65535", str(out),
        ],
        check=True,
    )  # fmt: skip
    return out
