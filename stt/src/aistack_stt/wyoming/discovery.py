"""Zeroconf: the Wyoming server announces itself as `_wyoming._tcp` over mDNS, with its name,
address and port, so Home Assistant offers it under Settings → Devices & services →
Discovered, the way it finds wyoming-faster-whisper and wyoming-piper.

The announced address and port are those a client on the LAN connects to; behind an Incus
proxy device they are the host's LAN address and the published port, not the container's
(`zeroconf_address`, `zeroconf_port`). Without an address, the one the machine would use
to reach the mDNS group (its LAN address on a simple network) is announced. mDNS is sent
on the interface holding that address only. An announcement that fails (no multicast on
the network, the address is not on this machine) is logged; the server keeps serving.
"""

from __future__ import annotations

import contextlib
import logging
import socket

log = logging.getLogger("aistack_stt.wyoming")

SERVICE_TYPE = "_wyoming._tcp.local."
MDNS_GROUP = "224.0.0.251"


def outgoing_address() -> str:
    """The local IPv4 address that would send to the mDNS group (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((MDNS_GROUP, 5353))
        return probe.getsockname()[0]


class Announcer:
    """One `_wyoming._tcp` service on mDNS, from `start` until `stop`."""

    def __init__(self, name: str, port: int, address: str = "") -> None:
        self.name = name
        self.port = port
        self.address = address
        self._zeroconf = None
        self._info = None

    async def start(self) -> bool:
        try:
            from zeroconf import IPVersion
            from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

            address = self.address or outgoing_address()
            host = socket.gethostname().split(".")[0] or "aistack-stt"
            info = AsyncServiceInfo(
                SERVICE_TYPE,
                f"{self.name}.{SERVICE_TYPE}",
                addresses=[socket.inet_aton(address)],
                port=self.port,
                server=f"{host}.local.",
            )
            zc = AsyncZeroconf(interfaces=[address], ip_version=IPVersion.V4Only)
            try:
                await zc.async_register_service(info)
            except BaseException:
                await zc.async_close()
                raise
        except Exception as exc:
            log.warning(
                "Wyoming: not announced over zeroconf (%s: %s); Home Assistant can still be "
                "given the address and port by hand",
                type(exc).__name__,
                exc,
            )
            return False
        self._zeroconf, self._info = zc, info
        log.info("Wyoming: announced as %r (_wyoming._tcp) at %s:%d", self.name, address, self.port)
        return True

    async def stop(self) -> None:
        zc, info = self._zeroconf, self._info
        self._zeroconf = self._info = None
        if zc is None:
            return
        with contextlib.suppress(Exception):
            await zc.async_unregister_service(info)
        with contextlib.suppress(Exception):
            await zc.async_close()
