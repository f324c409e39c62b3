"""LAN machines that misbehave at the front door, each in its own network namespace.

A `Holder` runs a small Python program inside a namespace (tests/helpers/netns.py, as
lan_browser.py makes them) that opens many connections to the door and keeps them open
until told to let go: either requests that never finish (a TCP connection that sent a few
bytes of a TLS handshake and stops) or requests whose header is complete and whose body
never is. `fetch` makes one ordinary HTTPS request from a namespace. Both go through the
host's address, as a machine on the LAN would, never through the Incus bridge.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

# Runs inside the namespace. argv: host port mode count ca_file. Prints one JSON line when
# every connection is open ({"held": n}), then on each line read from stdin one line saying
# on how many nginx still waits, neither answered nor closed ({"open": n}); ends at end of
# input.
_HOLD = r"""
import json, resource, socket, ssl, sys
host, port, mode, count, ca = sys.argv[1:6]
port, count = int(port), int(count)
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, count + 256)), hard))
held = []
for _ in range(count):
    raw = socket.create_connection((host, port), timeout=30)
    if mode == "half":
        # The first bytes of a TLS ClientHello record, and nothing more.
        raw.sendall(b"\x16\x03\x01\x02\x00\x01")
        held.append(raw)
    else:
        tls = ssl.create_default_context(cafile=ca).wrap_socket(raw, server_hostname=host)
        tls.sendall(b"POST /api/v1/auths/signin HTTP/1.1\r\nHost: " + host.encode()
                    + b"\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{")
        held.append(tls)
print(json.dumps({"held": len(held)}), flush=True)

# Whether nginx still waits on each request: it has neither answered nor closed it. Once
# it has, the request stays done. TLS 1.3 session tickets arrive after the handshake and are
# no answer: the TLS layer reads them and wants more.
done = [False] * len(held)

def waiting(index):
    if done[index]:
        return False
    s = held[index]
    s.setblocking(False)
    try:
        s.recv(1)
    except (BlockingIOError, ssl.SSLWantReadError):
        return True
    except OSError:
        pass
    done[index] = True
    return False

for _ in sys.stdin:
    print(json.dumps({"open": sum(waiting(i) for i in range(len(held)))}), flush=True)
"""

_FETCH = r"""
import json, ssl, sys, urllib.error, urllib.request
url, ca, headers = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
context = ssl.create_default_context(cafile=ca)
try:
    request = urllib.request.Request(url, headers=headers)
    with urllib.request.urlopen(request, context=context, timeout=60) as r:
        print(json.dumps({"status": r.status, "body": r.read().decode()}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read().decode()}))
"""


def _in_namespace(namespace: str, script: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", namespace, sys.executable, "-c", script, *args]


@dataclass
class Holder:
    """Connections one namespace holds open at the door; `open_now` asks how many nginx still
    keeps, `release` closes them all."""

    process: subprocess.Popen
    held: int

    def open_now(self) -> int:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write("?\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())["open"]

    def release(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def hold(namespace: str, url: str, mode: str, count: int, ca_file: str) -> Holder:
    """Open `count` connections from `namespace` to the door at `url`: mode "half" (a TLS
    handshake begun and never finished) or "body" (a request whose body never arrives).
    Returns once all are open."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 443
    process = subprocess.Popen(
        _in_namespace(namespace, _HOLD, host, str(port), mode, str(count), ca_file),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=60)
        raise AssertionError(f"the holder in {namespace} failed: {process.stderr.read()}")
    return Holder(process, json.loads(line)["held"])


def fetch(namespace: str, url: str, ca_file: str, headers: dict[str, str] | None = None
          ) -> tuple[int, str]:
    """One HTTPS GET from `namespace`, trusting `ca_file` (with `headers`): status and body."""
    out = subprocess.run(
        _in_namespace(namespace, _FETCH, url, ca_file, json.dumps(headers or {})),
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    answer = json.loads(out)
    return answer["status"], answer["body"]


def _until(check: Callable[[], bool], timeout: float) -> bool:
    """Poll `check` (a state outside this process: nothing to wait on instead) until it holds
    or `timeout` seconds pass; whether it held."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.5)
    return True


def wait_for_status(namespace: str, url: str, ca_file: str, status: int,
                    timeout: float = 60) -> bool:
    """Whether a GET of `url` from `namespace` answers `status` within `timeout` seconds."""
    return _until(lambda: fetch(namespace, url, ca_file)[0] == status, timeout)


def wait_for_open(holder: Holder, count: int, timeout: float) -> bool:
    """Whether nginx comes down to `count` of the holder's connections within `timeout`."""
    return _until(lambda: holder.open_now() == count, timeout)
