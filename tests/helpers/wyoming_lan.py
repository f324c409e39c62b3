"""Home Assistant's view of a stack that publishes Wyoming on the LAN (infra.yml `wyoming_lan`).

Two network namespaces play LAN machines (tests/helpers/netns.py, as the browser's does): one
on the network infra.yml allows, one on a network it does not. The allowed one's veth is the
host's "LAN interface": its host-side address is the one `wyoming_lan.listen` publishes on,
and avahi on the host answers mDNS there. Both reach the host through their veth and route
everything through it, so they meet the stack only where a LAN box would: the host's address.

In the namespaces the real `wyoming` client (AsyncTcpClient) and a `zeroconf` browser run as
subprocesses of this Python (`ip netns exec`). Needs root.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.netns import veth_namespace

ZEROCONF_BROWSER = Path(__file__).resolve().parents[2] / "stt" / "tests" / "zeroconf_browser.py"
_SWITCH = re.compile(
    r"(?P<head>\n(?P<pad> +)wyoming_lan:\n)(?P=pad)  enabled: false\n"
    r"(?P=pad)  listen: [^\n]*\n(?P=pad)  allow: [^\n]*\n"
)

# The client as a satellite streams: Transcribe, AudioStart, 1024-sample chunks, AudioStop,
# then events until the Transcript. Prints {"text": ...} or {"error": "<kind>: <message>"}.
_CLIENT = textwrap.dedent(
    """
    import asyncio, json, sys, wave
    from wyoming.asr import Transcribe, Transcript
    from wyoming.audio import AudioChunk, AudioStart, AudioStop
    from wyoming.client import AsyncTcpClient

    async def main(host, port, path):
        with wave.open(path, "rb") as w:
            rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
            pcm = w.readframes(w.getnframes())
        fmt = dict(rate=rate, width=width, channels=channels)
        step = 1024 * width * channels
        async with AsyncTcpClient(host, port) as client:
            await client.write_event(Transcribe(language="en").event())
            await client.write_event(AudioStart(**fmt).event())
            for i in range(0, len(pcm), step):
                await client.write_event(AudioChunk(audio=pcm[i:i + step], **fmt).event())
            await client.write_event(AudioStop().event())
            while (event := await client.read_event()) is not None:
                if Transcript.is_type(event.type):
                    return {"text": Transcript.from_event(event).text}
        return {"error": "closed: the server closed the connection without a transcript"}

    try:
        out = asyncio.run(asyncio.wait_for(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]), 120))
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError) as exc:
        out = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(out))
    """
)


@dataclass(frozen=True)
class LanMachine:
    namespace: str
    host_ip: str  # this host's address on that network
    client_ip: str
    network: str


@contextlib.contextmanager
def lan_machines() -> Iterator[tuple[LanMachine, LanMachine]]:
    """(a machine on the allowed network, one on a network infra.yml does not allow)."""
    allowed = LanMachine("aistack-ha-lan", "10.161.21.1", "10.161.21.2", "10.161.21.0/30")
    stranger = LanMachine("aistack-ha-other", "10.162.22.1", "10.162.22.2", "10.162.22.0/30")
    with contextlib.ExitStack() as stack:
        for machine, links in (
            (allowed, ("vha-host", "vha-lan")),
            (stranger, ("vho-host", "vho-lan")),
        ):
            subprocess.run(["ip", "netns", "del", machine.namespace], capture_output=True)
            subprocess.run(["ip", "link", "del", links[0]], capture_output=True)
            stack.enter_context(
                veth_namespace(
                    machine.namespace,
                    links,
                    (machine.host_ip, machine.client_ip),
                    30,
                    default_route=True,
                )
            )
        yield allowed, stranger


def switch_on(infra: Path, listen: str, allow: str, port: int, machine: str) -> None:
    """Turn the example's `wyoming_lan` on, publishing on `listen` for the network `allow`,
    and let the stack's `machine` reach Wyoming over the bridge (`allow:`), as a Home
    Assistant running as a machine of the stack would."""
    text = infra.read_text()
    match = _SWITCH.search(text)
    assert match, "the example infra.yml no longer shows wyoming_lan with enabled: false"
    pad, inner = match["pad"], match["pad"] + "  "
    body = (
        f"{match['head']}{inner}enabled: true\n{inner}listen: {listen}\n"
        f"{inner}allow: [{allow}]\n{pad}allow:\n{inner}{port}: [{machine}]\n"
    )
    infra.write_text(text[: match.start()] + body + text[match.end() :])


def transcribe_from(machine: LanMachine, host: str, port: int, wav: Path) -> dict[str, str]:
    """What the real wyoming client on `machine` gets for `wav` from host:port."""
    argv = ["ip", "netns", "exec", machine.namespace, sys.executable, "-c", _CLIENT]
    out = subprocess.run(
        [*argv, host, str(port), str(wav)], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def browse_from(machine: LanMachine, seconds: float, name: str) -> dict[str, dict]:
    """The `_wyoming._tcp` services a zeroconf browser on `machine` sees within `seconds`."""
    argv = [
        "ip",
        "netns",
        "exec",
        machine.namespace,
        sys.executable,
        str(ZEROCONF_BROWSER),
        machine.client_ip,
        str(seconds),
        name,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def describe_from_instance(project: str, instance: str, host: str, port: int) -> str:
    """The type of the first event a `describe` gets from host:port, asked from inside an
    instance of the stack (plain sockets: Wyoming is one JSON header per line)."""
    code = (
        "import json, socket\n"
        f"s = socket.create_connection(({host!r}, {port}), timeout=30)\n"
        's.sendall(b\'{"type": "describe"}\\n\')\n'
        "print(json.loads(s.makefile('rb').readline())['type'])\n"
    )
    out = subprocess.run(
        ["incus", "exec", "--project", project, instance, "--", "python3", "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip()
