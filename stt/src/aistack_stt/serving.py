"""How the process meets the network: its open-file limit, a cap on connections, and a
deadline for the request headers.

uvicorn keeps a connection that never sends a request open for ever, and accepts until the
process runs out of file descriptors; then nobody is served, and asyncio's accept loop logs
"Too many open files" as fast as it can spin (logfilters.py keeps that to one line). Here:

- the soft RLIMIT_NOFILE is raised to the hard limit at start (systemd's LimitNOFILE sets both);
- at most `max_connections` HTTP and WebSocket connections are open at once (by default what
  the open-file limit leaves room for, two descriptors each: the socket and a spooled upload);
  the next one is answered 503 `too_many_connections` and closed at once, so the descriptors
  never run out and a client learns why;
- a connection that has not sent its request headers within `header_timeout_s` is closed, so
  idle or slow (slowloris) connections give their place back to real clients;
- one client address holds at most `max_connections_per_client` of those places
  (client_limits.py), so a single machine cannot shut the others out meanwhile.
"""

from __future__ import annotations

import json
import logging
import resource

from uvicorn.protocols.http.h11_impl import H11Protocol

from .client_limits import AddressCounter, Network, busy_body, is_trusted
from .config import Settings

log = logging.getLogger("aistack_stt.serving")

# Descriptors the process needs besides its connections: models, logs, threads' pipes, the
# Wyoming server's listener, temporary files of decodes.
RESERVED_FDS = 64


def raise_open_file_limit() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit, where the kernel allows; (before, after)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft >= hard:
        return soft, soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft, soft
    return soft, hard


def connection_budget(settings: Settings, open_files: int | None = None) -> int:
    """`settings.max_connections`, or for 0 what the open-file limit leaves room for."""
    if settings.max_connections:
        return settings.max_connections
    if open_files is None:
        open_files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    spare = open_files - RESERVED_FDS - settings.wyoming.max_connections
    return max(8, spare // 2)


def _head(body: bytes) -> bytes:
    return (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Retry-After: 5\r\nConnection: close\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _busy_response(limit: int) -> bytes:
    body = json.dumps(
        {
            "error": {
                "message": f"the server already has {limit} open connections "
                "(AISTACK_STT_MAX_CONNECTIONS); retry in a few seconds",
                "type": "server_error",
                "param": None,
                "code": "too_many_connections",
            }
        }
    ).encode()
    return _head(body)


def protocol_class(
    max_connections: int,
    header_timeout_s: float,
    per_client: AddressCounter | None = None,
    proxies: tuple[Network, ...] = (),
) -> type[H11Protocol]:
    """uvicorn's h11 protocol with the connection caps and the request-header deadline.

    Connections from `proxies` are not counted per address here (PerClientRequests counts
    their requests per client instead)."""
    busy = _busy_response(max_connections)
    busy_client = _head(busy_body(per_client.limit)) if per_client is not None else b""

    class GuardedH11Protocol(H11Protocol):
        _deadline = None
        _address: str | None = None

        def connection_made(self, transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                log.warning(
                    "refused a connection: %d are open (AISTACK_STT_MAX_CONNECTIONS)",
                    max_connections,
                )
                transport.write(busy)
                transport.close()
                return
            peer = self.client[0] if self.client else ""
            if per_client is not None and not is_trusted(peer, proxies):
                if not per_client.acquire(peer):
                    log.warning(
                        "refused a connection from %s: it has %d open "
                        "(AISTACK_STT_MAX_CONNECTIONS_PER_CLIENT)",
                        peer,
                        per_client.limit,
                    )
                    transport.write(busy_client)
                    transport.close()
                    return
                self._address = peer
            self._deadline = self.loop.call_later(header_timeout_s, self._no_request)

        def _no_request(self) -> None:
            # Once a request has arrived (`scope`), keep-alive and the app's own timeouts rule;
            # a WebSocket upgrade hands the transport to another protocol object.
            if self.scope is None and not self.transport.is_closing():
                log.warning(
                    "closed a connection that sent no request within %g s "
                    "(AISTACK_STT_HEADER_TIMEOUT_S)",
                    header_timeout_s,
                )
                self.transport.close()

        def handle_websocket_upgrade(self, event) -> None:  # type: ignore[override]
            # uvicorn hands the transport to a WebSocket protocol object and never calls this
            # one's connection_lost: the address's place moves with it, released when it closes.
            super().handle_websocket_upgrade(event)
            if self._deadline is not None:
                self._deadline.cancel()
            address, self._address = self._address, None
            if address is None or per_client is None:
                return
            socket_protocol = self.transport.get_protocol()
            lost = socket_protocol.connection_lost

            def connection_lost(exc: Exception | None) -> None:
                per_client.release(address)
                lost(exc)

            socket_protocol.connection_lost = connection_lost

        def connection_lost(self, exc: Exception | None) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
            if self._address is not None and per_client is not None:
                per_client.release(self._address)
                self._address = None
            super().connection_lost(exc)

    return GuardedH11Protocol
