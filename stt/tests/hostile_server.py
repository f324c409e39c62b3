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
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers import stt_server


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


class ServerProcess(stt_server.ServerProcess):
    """The shared server process, with what the hostile tests read of it from /proc."""

    def rss_mib(self) -> float:
        return _status(self.pid)["VmRSS"] / 1024

    def peak_mib(self) -> float:
        return _status(self.pid)["VmHWM"] / 1024

    def reset_peak(self) -> None:
        """Start the peak (VmHWM) over from the current resident set (Linux: clear_refs 5)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def client_ports(self) -> set[int]:
        """The client-side ports of the TCP connections this server has accepted and holds
        open now (ESTABLISHED, its own sockets): a connection still waiting in the listen
        backlog, or one the server has closed, is not among them."""
        sockets = set()
        for fd in Path(f"/proc/{self.pid}/fd").iterdir():
            with_target = os.readlink(fd) if fd.is_symlink() else ""
            if with_target.startswith("socket:["):
                sockets.add(with_target[len("socket:[") : -1])
        ports = set()
        for table in ("tcp", "tcp6"):
            path = Path(f"/proc/{self.pid}/net/{table}")
            for line in path.read_text().splitlines()[1:] if path.exists() else []:
                fields = line.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                if (state == "01" and inode in sockets
                        and int(local.rsplit(":", 1)[1], 16) == self.port):
                    ports.add(int(remote.rsplit(":", 1)[1], 16))
        return ports


def start_process(
    models_dir: Path,
    log: Path,
    *,
    preexec_fn: Callable[[], None] | None = None,
    ready_timeout: float = 180,
    **env: str | None,
) -> ServerProcess:
    """tiny.en from `models_dir` on the CPU, one thread, no Wyoming port (the harness's
    default); `env` adds or (None) removes variables. Returns once `/health` says ok (the
    rule of tests/helpers/stt_server.py)."""
    settings = {
        "AISTACK_STT_MODEL": "tiny.en",
        "AISTACK_STT_MODEL_DIR": str(models_dir),
        "AISTACK_STT_DEVICE": "cpu",
        "AISTACK_STT_CPU_THREADS": "1",
        **env,
    }
    return stt_server.start_process(settings, log=log, preexec_fn=preexec_fn,
                                    timeout=ready_timeout, cls=ServerProcess)


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
