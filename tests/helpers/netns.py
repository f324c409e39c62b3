"""A network namespace joined to this machine by one veth pair: a second machine on a LAN,
for the tests that need a peer (a browser, a zeroconf listener). Needs root (ip netns)."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@contextlib.contextmanager
def veth_namespace(
    name: str,
    links: tuple[str, str],
    addresses: tuple[str, str],
    prefix: int,
    default_route: bool = False,
) -> Iterator[None]:
    """Namespace `name`, linked to this machine by the veth pair `links` (this side, the
    namespace's side) with `addresses` (likewise) on a /`prefix` network, its loopback up; with
    `default_route`, the namespace routes everything through this machine. Both are removed
    when the block ends."""
    host_if, lan_if = links
    host_ip, client_ip = addresses
    ip("netns", "add", name)
    try:
        ip("link", "add", host_if, "type", "veth", "peer", "name", lan_if)
        ip("link", "set", lan_if, "netns", name)
        ip("addr", "add", f"{host_ip}/{prefix}", "dev", host_if)
        ip("link", "set", host_if, "up")
        ip("-n", name, "addr", "add", f"{client_ip}/{prefix}", "dev", lan_if)
        ip("-n", name, "link", "set", lan_if, "up")
        ip("-n", name, "link", "set", "lo", "up")
        if default_route:
            ip("-n", name, "route", "add", "default", "via", host_ip)
        yield
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
