"""What the faults test measures: when a service is back, and what an in-flight request got.

A service is back when systemd runs a new main process for it (a dead nginx master's
workers can still answer for a moment, which is not "back") and its health URL answers 200.
An in-flight request is a connection in the middle of sending its request (its headers
begun, not ended, so no service answers it early with a 401 or a 404); at the fault it must
end (an answer, an error, a closed connection) and never hang.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from dataclasses import dataclass

import httpx

from .layout import PROJECT


@dataclass(frozen=True)
class Service:
    name: str
    machine: str
    unit: str
    host: str
    port: int
    health: str
    # The bound docs/operations.md promises for a kill -9 of the main process, in seconds.
    bound_s: float
    tls: bool = False


def incus_exec(machine: str, *argv: str) -> str:
    return subprocess.run(
        ["incus", "exec", "--project", PROJECT, machine, "--", *argv],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout.strip()  # fmt: skip


def main_pid(service: Service) -> int:
    try:
        return int(incus_exec(service.machine, "systemctl", "show", "-p", "MainPID",
                              "--value", service.unit) or 0)  # fmt: skip
    except (subprocess.SubprocessError, ValueError):
        return 0  # the machine is restarting


def answers(service: Service, verify: ssl.SSLContext | bool) -> bool:
    try:
        return httpx.get(service.health, verify=verify, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def wait_until_back(
    service: Service, verify: ssl.SSLContext | bool, old_pid: int, limit_s: float
) -> float | None:
    """Seconds from now until a new main process answers; None if not within limit_s."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        pid = main_pid(service)
        if pid not in (0, old_pid) and answers(service, verify):
            return time.monotonic() - started
        time.sleep(0.25)  # polling a process that is starting; nothing to wait on instead
    return None


def open_request(service: Service, verify: ssl.SSLContext | bool) -> socket.socket:
    """A request in flight: its headers begun and not ended."""
    raw = socket.create_connection((service.host, service.port), timeout=30)
    sock: socket.socket = raw
    if service.tls:
        context = verify if isinstance(verify, ssl.SSLContext) else ssl.create_default_context()
        sock = context.wrap_socket(raw, server_hostname=None if verify is False else service.host)
    sock.sendall(
        b"POST /api/in-flight HTTP/1.1\r\nHost: faults\r\nContent-Length: 10000000\r\n"
    )
    return sock


def request_outcome(sock: socket.socket, limit_s: float) -> str:
    """How the in-flight request ended: 'closed', 'reset', 'answered <status line>', or
    'hung' when nothing came within limit_s."""
    sock.settimeout(limit_s)
    try:
        data = sock.recv(4096)
    except TimeoutError:
        return "hung"
    except (ConnectionResetError, ssl.SSLError, OSError):
        return "reset"
    finally:
        sock.close()
    return f"answered {data.splitlines()[0].decode(errors='replace')}" if data else "closed"
