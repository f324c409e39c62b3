"""Starting aistack-stt for tests and benchmarks, and the one rule for when it is ready.

Every test and benchmark that starts an aistack-stt server goes through here: the
hostile-client tests and `aistack-stt serve` in stt/tests, the molecule scenario's STT on
the bridge (stt_host.py), and the benchmarks in bench/ (they put the repository root on
sys.path through benchdoc). In-process servers (stt/tests/stt_testkit.py) wait with the
same `wait_ready`.

The rule, read from `GET /health`:
- `status: "ok"`: ready (the default model is loaded);
- `status: "loading"`, or no answer yet: not yet, keep waiting;
- `status: "error"`: not ready and never will be (the default model failed to load; the
  server stays up to say why): the wait ends at once with the server's reason.
A test of the "error" state itself waits with `wait_settled` and reads the body.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parents[2]
READY = "ok"
LOADING = "loading"


class NotReady(RuntimeError):
    """The server did not become ready: the message says what it answered, or that it
    exited, and the end of its log where there is one."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def health(url: str, timeout: float = 5) -> dict | None:
    """The body of `url`/health, or None while nothing answers there (starting up)."""
    try:
        body = httpx.get(url + "/health", timeout=timeout).json()
    except (httpx.TransportError, ValueError):
        return None
    return body if isinstance(body, dict) and "status" in body else None


def wait_settled(url: str, *, exited: Callable[[], int | None] = lambda: None,
                 timeout: float = 180) -> dict:
    """Poll /health until the server has finished loading its default model: the body,
    "ok" or "error". `exited` says whether the server process has ended (its exit code)."""
    deadline = time.monotonic() + timeout
    while True:
        code = exited()
        if code is not None:
            raise NotReady(f"aistack-stt at {url} exited with {code} before it was ready")
        body = health(url)
        if body is not None and body["status"] != LOADING:
            return body
        if time.monotonic() > deadline:
            said = body["status"] if body else "nothing"
            raise NotReady(f"aistack-stt at {url} answered {said} for {timeout:.0f} s")
        time.sleep(0.2)


def wait_ready(url: str, *, exited: Callable[[], int | None] = lambda: None,
               timeout: float = 180) -> dict:
    """Wait until /health says "ok" (the body); "error" ends the wait with the reason."""
    body = wait_settled(url, exited=exited, timeout=timeout)
    if body["status"] != READY:
        raise NotReady(f"aistack-stt at {url} is not ready: status {body['status']!r}, "
                       f"error {body.get('error')!r}")
    return body


@dataclass
class ServerProcess:
    """`aistack-stt serve` as a process of its own, as systemd runs it."""

    proc: subprocess.Popen
    port: int
    log: Path | None = None
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, **kw)

    def health(self) -> dict:
        return httpx.get(self.url + "/health", timeout=30).json()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log else ""

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as systemd stops it; SIGKILL only if it has not exited after `timeout`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=30)


def server_env(settings: Mapping[str, str | None], src: Path | None = None) -> dict[str, str]:
    """This process's environment without any AISTACK_STT_* or hub setting of its own, the
    hub offline and the Wyoming port off (several runs share a machine, and 10300 is one
    port: a server that speaks Wyoming says so), then `settings` (a None value removes a
    variable). The code served is this checkout's stt/src (or `src`, another checkout's),
    whatever the venv's editable install points at."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AISTACK_STT_", "HF_HUB_OFFLINE", "HF_ENDPOINT"))}  # fmt: skip
    env["HF_HUB_OFFLINE"] = "1"
    env["AISTACK_STT_WYOMING_ENABLED"] = "false"
    code = str(src or ROOT / "stt" / "src")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [code, env.get("PYTHONPATH")]))
    env.update(settings)
    return {k: v for k, v in env.items() if v is not None}


def start_process(
    settings: Mapping[str, str | None],
    *,
    log: Path | IO | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    src: Path | None = None,
    preexec_fn: Callable[[], None] | None = None,
    timeout: float = 180,
    ready: bool = True,
    cls: type[ServerProcess] = ServerProcess,
) -> ServerProcess:
    """Start `aistack-stt serve` with `settings` (AISTACK_STT_* variables, or others such
    as HF_ENDPOINT) on host:port (a free port by default) and wait until it is ready (with
    `ready=False`: until it has settled, "ok" or "error"). Its stdout and stderr go to `log`
    (a path, or an open file several servers share), or to this process's own. `cls` is the
    ServerProcess subclass to return (the hostile tests add memory readings to theirs)."""
    port = port or free_port()
    env = server_env({"AISTACK_STT_HOST": host, "AISTACK_STT_PORT": str(port), **settings}, src)
    out = log.open("wb") if isinstance(log, Path) else log
    proc = subprocess.Popen(
        [sys.executable, "-m", "aistack_stt.cli", "serve"],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT if out is not None else None,
        preexec_fn=preexec_fn,  # noqa: PLW1509 (only sets a resource limit)
    )
    if isinstance(log, Path):
        out.close()
    server = cls(proc, port, log if isinstance(log, Path) else None, host)
    try:
        (wait_ready if ready else wait_settled)(server.url, exited=proc.poll, timeout=timeout)
    except NotReady as exc:
        server.stop()
        raise NotReady(f"{exc}\n{server.log_text()[-3000:]}") from None
    return server
