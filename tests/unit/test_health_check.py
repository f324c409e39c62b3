"""The summary's health_check module (plugins/modules/health_check.py), run by a real
ansible-playbook against real HTTP servers on loopback: every URL is asked at the same time,
each answer comes back in the order asked, and a URL that does not answer is reported, not
raised."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# How many requests the /together endpoint waits for before it answers any of them.
TOGETHER = 3


class Handler(BaseHTTPRequestHandler):
    together = threading.Barrier(TOGETHER, timeout=8)

    def log_message(self, *args: object) -> None:  # quiet test output
        pass

    def _answer(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        if self.path == "/health":
            self._answer(200, b'{"status": "ok", "model": "tiny.en"}', "application/json")
        elif self.path == "/broken":
            self._answer(500, b"Internal Server Error", "text/plain")
        elif self.path == "/together":
            # Answers only when TOGETHER requests are in at once: asked one after the other,
            # the first would wait here until the barrier times out and get a 503.
            try:
                self.together.wait()
            except threading.BrokenBarrierError:
                self._answer(503, b"asked one at a time", "text/plain")
                return
            self._answer(200, b'{"together": true}', "application/json")
        else:
            self._answer(404, b"no such page", "text/plain")


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_module(tmp_path: Path, checks: list[dict]) -> dict:
    """Run the module once through ansible-playbook on localhost; return its registered result."""
    out = tmp_path / "result.json"
    (tmp_path / "play.yml").write_text(
        json.dumps(
            [
                {
                    "hosts": "localhost",
                    "gather_facts": False,
                    "tasks": [
                        {"homelab.aistack.health_check": {"checks": checks, "timeout": 10},
                         "register": "answer"},
                        {"ansible.builtin.copy": {"content": "{{ answer | to_json }}",
                                                  "dest": str(out)}},
                    ],
                }
            ]
        )
    )  # fmt: skip
    run = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "localhost,", "-c", "local",
         str(tmp_path / "play.yml")],
        capture_output=True, text=True, check=False, timeout=300, cwd=ROOT,
        env={**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
             "ANSIBLE_PYTHON_INTERPRETER": sys.executable},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return json.loads(out.read_text())


def test_every_url_is_asked_at_once_and_answered_in_order(server: str, tmp_path: Path) -> None:
    refused = f"http://127.0.0.1:{closed_port()}/health"
    checks = [
        {"name": "first", "health": f"{server}/together"},
        {"name": "healthy", "health": f"{server}/health", "ignored": "extra keys"},
        {"name": "second", "health": f"{server}/together"},
        {"name": "refused", "health": refused},
        {"name": "broken", "health": f"{server}/broken"},
        {"name": "third", "health": f"{server}/together"},
    ]
    result = run_module(tmp_path, checks)
    assert result["changed"] is False
    answers = result["results"]
    assert [a["url"] for a in answers] == [c["health"] for c in checks]
    by_name = {c["name"]: a for c, a in zip(checks, answers, strict=True)}
    # The three /together requests were in flight at the same time, or none would be 200.
    for name in ("first", "second", "third"):
        assert by_name[name]["status"] == 200, by_name[name]
        assert by_name[name]["json"] == {"together": True}
    assert by_name["healthy"]["status"] == 200
    assert by_name["healthy"]["json"] == {"status": "ok", "model": "tiny.en"}
    assert by_name["broken"]["status"] == 500
    assert by_name["broken"]["msg"].startswith("HTTP 500")
    assert "json" not in by_name["broken"]
    assert by_name["refused"]["status"] == -1
    assert by_name["refused"]["msg"].startswith("Request failed:")
    assert "refused" in by_name["refused"]["msg"].lower()


def test_an_empty_list_asks_nothing_and_a_check_without_url_says_so(tmp_path: Path) -> None:
    assert run_module(tmp_path, [])["results"] == []
    answers = run_module(tmp_path, [{"name": "nothing"}])["results"]
    assert answers == [{"url": "", "status": -1, "msg": "no URL given"}]
