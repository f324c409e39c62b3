"""Zeroconf: a browser on a LAN (a network namespace joined to this machine by a veth
pair) sees the Wyoming server as `_wyoming._tcp` with the right address and port, reaches it
there with the real wyoming client, and sees nothing when the announcement is switched off.

Needs root (ip netns); runs without a model (`describe` only).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aistack_stt.config import Settings
from aistack_stt.wyoming import WyomingSettings
from stt_testkit import LiveServer, start_server, stop_server

from tests.helpers.netns import veth_namespace

BROWSER = Path(__file__).with_name("zeroconf_browser.py")
NAME = "aistack-stt-zc-test"


@pytest.fixture(scope="module")
def lan() -> Iterator[tuple[str, str, str]]:
    """(namespace, this machine's address on the LAN, the LAN machine's address)."""
    if os.geteuid() != 0:
        pytest.fail("the zeroconf test needs root (ip netns) to build its LAN")
    tag = secrets.token_hex(3)
    ns, host_if, lan_if = f"hazc-{tag}", f"hazh{tag}", f"hazl{tag}"
    net = 100 + int(tag[:2], 16) % 100
    here, there = f"10.231.{net}.1", f"10.231.{net}.2"
    with veth_namespace(ns, (host_if, lan_if), (here, there), 24):
        yield ns, here, there


def _serve(wyoming: WyomingSettings, models_dir: Path) -> LiveServer:
    settings = Settings(model="tiny.en", model_dir=models_dir, device="cpu", cpu_threads=1)
    return start_server(settings, wyoming=wyoming, load_default=False)


def _browse(ns: str, local: str, seconds: float, name: str | None = None) -> dict:
    argv = ["ip", "netns", "exec", ns, sys.executable, str(BROWSER), local, str(seconds)]
    out = subprocess.run(argv + ([name] if name else []), check=True, capture_output=True)
    return json.loads(out.stdout)


async def _describe_from(ns: str, address: str, port: int) -> str:
    """The real wyoming client, run inside the LAN namespace: the server's info."""
    code = (
        "import asyncio, json, sys\n"
        "from wyoming.client import AsyncTcpClient\n"
        "from wyoming.info import Describe, Info\n"
        "async def main():\n"
        f"    async with AsyncTcpClient({address!r}, {port}) as c:\n"
        "        await c.write_event(Describe().event())\n"
        "        while (e := await c.read_event()) is not None:\n"
        "            if Info.is_type(e.type):\n"
        "                print(Info.from_event(e).asr[0].name); return\n"
        "asyncio.run(main())\n"
    )
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return out.decode().strip()


def test_the_lan_sees_the_announcement_and_reaches_the_announced_port(lan, models_dir):
    ns, here, there = lan
    wyoming = WyomingSettings(
        host=here, port=0, zeroconf=True, zeroconf_name=NAME, zeroconf_address=here
    )
    live = _serve(wyoming, models_dir)
    try:
        port = live.app.state.wyoming.port
        found = _browse(ns, there, 20, NAME)
        service = found.get(f"{NAME}._wyoming._tcp.local.")
        assert service == {"addresses": [here], "port": port}, found
        assert asyncio.run(_describe_from(ns, here, port)) == "aistack-stt"
    finally:
        stop_server(live)


def test_no_announcement_when_switched_off(lan, models_dir):
    ns, here, there = lan
    wyoming = WyomingSettings(host=here, port=0, zeroconf=False, zeroconf_name=NAME)
    live = _serve(wyoming, models_dir)
    try:
        assert live.app.state.wyoming.announcer is None
        assert f"{NAME}._wyoming._tcp.local." not in _browse(ns, there, 4)
    finally:
        stop_server(live)
