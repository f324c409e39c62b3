"""`aistack-stt serve` as a real process, for the hostile-client tests.

A process, not an in-process server: its memory can be read from /proc (resident set and
its peak) without the test's own allocations in it, SIGTERM reaches a real uvicorn, and a
lowered open-file limit is its own. It writes stdout and stderr (uvicorn's access log
included) into one file, exactly what systemd would put in the journal; tests read that
file back (a pipe nobody reads would stall the server).
"""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from stt_testkit import _free_port

EXE = [sys.executable, "-m", "aistack_stt.cli", "serve"]


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
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as systemd stops it; SIGKILL only if it has not exited after `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=30)


def server_env(models_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AISTACK_STT_", "HF_HUB_OFFLINE", "HF_ENDPOINT"))
    }
    env.update(
        AISTACK_STT_HOST="127.0.0.1",
        AISTACK_STT_PORT=str(port),
        AISTACK_STT_MODEL="tiny.en",
        AISTACK_STT_MODEL_DIR=str(models_dir),
        AISTACK_STT_DEVICE="cpu",
        AISTACK_STT_CPU_THREADS="1",
        AISTACK_STT_WYOMING_ENABLED="false",
        HF_HUB_OFFLINE="1",
    )
    env.update(extra)
    return {k: v for k, v in env.items() if v is not None}


def start_process(
    models_dir: Path,
    log: Path,
    *,
    preexec_fn: Callable[[], None] | None = None,
    ready_timeout: float = 180,
    **env: str,
) -> ServerProcess:
    """Start the server and wait until its default model is loaded (`/health` says ok)."""
    port = _free_port()
    out = log.open("wb")
    proc = subprocess.Popen(
        EXE,
        env=server_env(models_dir, port, **env),
        stdout=out,
        stderr=subprocess.STDOUT,
        preexec_fn=preexec_fn,  # noqa: PLW1509 (only sets a resource limit)
    )
    out.close()
    server = ServerProcess(proc, port, log)
    deadline = time.monotonic() + ready_timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(server.url + "/health", timeout=2).json()["status"] == "ok":
                return server
        except (httpx.TransportError, ValueError, KeyError):
            pass
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"aistack-stt did not become ready:\n{server.log_text()[-3000:]}")


@dataclass
class HubRecorder:
    """A stand-in Hugging Face endpoint on loopback: answers 404 and notes every path asked."""

    paths: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self) -> None:
                recorder.paths.append(self.path)
                body = b'{"error": "Repository not found"}'
                self.send_response(404)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-Error-Code", "RepoNotFound")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_HEAD = _answer  # noqa: N815 (http.server's names)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


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
