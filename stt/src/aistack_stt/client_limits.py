"""A cap per client address, so that one machine cannot take every connection.

The global cap (serving.py) keeps the descriptors from running out; on its own it lets a
single misbehaving address (1 100 half-sent requests) hold every place until the header
deadline frees them, and every other client is refused meanwhile. Here each address may
hold at most a share of the places:

- a direct connection counts for its TCP peer from accept to close, so connections that
  never send a header count too (serving.py's protocol, the Wyoming server);
- a connection from a trusted proxy (`trusted_proxies`: the front door) carries many
  clients and is not counted at accept: nginx opens it only once it holds a whole request.
  Each request through it counts for the client the proxy names (`X-Real-IP`, else the last
  `X-Forwarded-For` hop), for as long as the request or WebSocket lasts (`PerClientRequests`),
  and that client address is what the app and its log see.

Everything here runs on the event loop (protocol callbacks, ASGI calls): no lock.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import Iterable

log = logging.getLogger("aistack_stt.client_limits")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def check_proxies(name: str, value: str) -> str | None:
    """The settings tree's check of `trusted_proxies`: the entry that is no address, if any."""
    for item in filter(None, (part.strip() for part in value.split(","))):
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            return (
                f"{name}: {item!r} is not an address or network; use addresses or CIDRs such "
                "as 10.100.10.11 or 10.100.10.0/24, separated by commas"
            )
    return None


def proxy_networks(text: str) -> tuple[Network, ...]:
    """`trusted_proxies` as networks (Settings has checked every entry)."""
    items = (part.strip() for part in text.split(","))
    return tuple(ipaddress.ip_network(item, strict=False) for item in items if item)


def is_trusted(address: str, networks: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    return any(ip in net for net in networks)


def per_client_limit(configured: int, budget: int) -> int:
    """`max_connections_per_client`, or for 0 a quarter of the connection budget (8 or more)."""
    return configured if configured else max(8, budget // 4)


def wyoming_per_client_limit(max_connections: int) -> int:
    """Half of the Wyoming connections per address (2 or more): Home Assistant speaks for
    every satellite of the house from one address."""
    return max(2, max_connections // 2)


class AddressCounter:
    """Open connections (or proxied requests) per client address, refused past `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}
        self.refused = 0

    def acquire(self, address: str) -> bool:
        count = self._open.get(address, 0)
        if count >= self.limit:
            self.refused += 1
            return False
        self._open[address] = count + 1
        return True

    def release(self, address: str) -> None:
        count = self._open.get(address, 0) - 1
        if count > 0:
            self._open[address] = count
        else:
            self._open.pop(address, None)

    def health(self) -> dict:
        """For /health: addresses connected now, the busiest one's count, the cap, refusals."""
        return {
            "addresses": len(self._open),
            "busiest": max(self._open.values(), default=0),
            "per_client_limit": self.limit,
            "refused": self.refused,
        }


def busy_body(limit: int) -> bytes:
    return json.dumps(
        {
            "error": {
                "message": f"this client address already has {limit} open connections "
                "(AISTACK_STT_MAX_CONNECTIONS_PER_CLIENT); retry in a few seconds",
                "type": "server_error",
                "param": None,
                "code": "too_many_connections",
            }
        }
    ).encode()


def forwarded_client(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The client a proxy names: X-Real-IP, else the last X-Forwarded-For hop."""
    real = forwarded = None
    for name, value in headers:
        if name == b"x-real-ip":
            real = value.decode("latin-1").strip()
        elif name == b"x-forwarded-for":
            forwarded = value.decode("latin-1").split(",")[-1].strip()
    return real or forwarded or None


class PerClientRequests:
    """ASGI middleware: requests that come through a trusted proxy count per named client."""

    def __init__(self, app, counter: AddressCounter, proxies: tuple[Network, ...]) -> None:
        self.app = app
        self.counter = counter
        self.proxies = proxies

    async def __call__(self, scope, receive, send) -> None:
        client = scope.get("client")
        if (
            scope["type"] not in ("http", "websocket")
            or not client
            or not self.proxies
            or not is_trusted(client[0], self.proxies)
        ):
            await self.app(scope, receive, send)
            return
        address = forwarded_client(scope.get("headers", ())) or client[0]
        scope = dict(scope, client=(address, 0))
        if not self.counter.acquire(address):
            log.warning(
                "refused a request from %s (through %s): it has %d open "
                "(AISTACK_STT_MAX_CONNECTIONS_PER_CLIENT)",
                address,
                client[0],
                self.counter.limit,
            )
            await _refuse(scope, send, self.counter.limit)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.counter.release(address)


async def _refuse(scope, send, limit: int) -> None:
    if scope["type"] == "websocket":
        # Before accept: the server answers the handshake with 403; 1013 says "try again later".
        await send({"type": "websocket.close", "code": 1013})
        return
    body = busy_body(limit)
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"retry-after", b"5"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
