"""A real aistack-stt running on the Incus host, for tests of the machines that call it.

Tests of the open_webui role need a speech-to-text service that a container can reach. This
starts the project's own `aistack-stt serve` from the controller's virtual environment, bound to
the test bridge's gateway address, with the real tiny.en weights from scripts/fetch-test-models.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
TINY_EN = ROOT / ".cache" / "models" / "tiny.en"


class STTUnavailable(RuntimeError):
    """aistack-stt could not be started; the message says what is missing."""


@contextlib.contextmanager
def running_stt(host: str, port: int = 8000, model: Path = TINY_EN,
                timeout: float = 120.0) -> Iterator[str]:
    """Run aistack-stt on host:port until the block ends; yields its base URL (no /v1)."""
    exe = ROOT / ".venv" / "bin" / "aistack-stt"
    if not exe.exists():
        exe = Path(shutil.which("aistack-stt") or exe)
    if not exe.exists():
        raise STTUnavailable("aistack-stt is not installed in .venv: run `make setup`")
    if not (model / "model.bin").is_file():
        raise STTUnavailable(f"no Whisper weights in {model}: run scripts/fetch-test-models")
    url = f"http://{host}:{port}"
    log = open(ROOT / ".cache" / f"aistack-stt-{host}-{port}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [str(exe), "serve", "--host", host, "--port", str(port), "--model", str(model),
         "--device", "cpu", "--log-level", "warning"],
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise STTUnavailable(f"aistack-stt exited with {proc.returncode}; see {log.name}")
            try:
                if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise STTUnavailable(f"aistack-stt did not answer {url}/health in {timeout:.0f} s")
            time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
