"""The Wyoming TCP server: accepts connections up to a limit and runs each in its own task.

It runs on the app's event loop (started and stopped by the app's lifespan), so requests
reach the same engine object as HTTP requests do; decoding happens in the engine's threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

from ..client_limits import AddressCounter, wyoming_per_client_limit
from ..config import WyomingSettings
from .discovery import Announcer
from .events import Event, write_event
from .handler import Connection, Services

log = logging.getLogger("aistack_stt.wyoming")
REFUSE_DRAIN_S = 1.0  # how long a refused client may take to close after the error


async def _drain(reader: asyncio.StreamReader) -> None:
    """Read and drop what the client sends until it closes its side."""
    while await reader.read(65536):
        pass


class WyomingServer:
    def __init__(self, settings: WyomingSettings, services: Services) -> None:
        self.settings = settings
        self.services = services
        self._server: asyncio.AbstractServer | None = None
        self._socket: socket.socket | None = None
        self._connections: set[asyncio.Task] = set()
        self.announcer: Announcer | None = None
        # One address (a misbehaving machine) cannot take every place (client_limits.py).
        self.per_client = AddressCounter(wyoming_per_client_limit(settings.max_connections))

    @property
    def port(self) -> int:
        """The port actually bound (differs from the setting when that is 0)."""
        assert self._server is not None and self._server.sockets
        return self._server.sockets[0].getsockname()[1]

    @property
    def connections(self) -> int:
        return len(self._connections)

    def bind(self) -> None:
        """Take the port now, before the event loop runs, so `serve` can report a busy port
        in one line; `start` binds by itself when this was not called."""
        s = self.settings
        try:
            family = socket.getaddrinfo(s.host or None, s.port, type=socket.SOCK_STREAM)[0][0]
            self._socket = socket.create_server((s.host, s.port), family=family)
        except OSError as exc:
            raise OSError(
                f"cannot listen for Wyoming on {s.host}:{s.port}: {exc.strerror or exc}; "
                "free the port, choose another (AISTACK_STT_WYOMING_PORT) or switch Wyoming "
                "off (AISTACK_STT_WYOMING_ENABLED=false)"
            ) from None

    async def start(self) -> None:
        if self._socket is None:
            self.bind()
        self._server = await asyncio.start_server(
            self._accept, sock=self._socket, limit=self.settings.max_event_bytes + 1
        )
        self._socket = None
        log.info("Wyoming server listening on %s:%d", self.settings.host, self.port)
        s = self.settings
        if s.zeroconf:
            self.announcer = Announcer(
                s.zeroconf_name, s.zeroconf_port or self.port, s.zeroconf_address
            )
            await self.announcer.start()

    async def stop(self) -> None:
        if self.announcer is not None:
            await self.announcer.stop()
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.wait(self._connections, timeout=10)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), 5)
        self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        peer = writer.get_extra_info("peername")
        if not self.settings.allows(peer[0] if isinstance(peer, tuple) else ""):
            log.warning(
                "wyoming %s: refusing the connection: the address is not in "
                "AISTACK_STT_WYOMING_ALLOW (%s)",
                peer,
                self.settings.allow,
            )
            writer.close()
            return
        if len(self._connections) >= self.settings.max_connections:
            await self._refuse(reader, writer)
            return
        address = peer[0] if isinstance(peer, tuple) else ""
        if not self.per_client.acquire(address):
            await self._refuse(reader, writer, per_client=True)
            return
        self._connections.add(task)
        try:
            await Connection(reader, writer, self.services, self.settings).run()
        except asyncio.CancelledError:
            writer.close()
            raise
        except Exception:  # a bug in one connection must not reach the server
            log.exception("wyoming: connection from %s failed", writer.get_extra_info("peername"))
            writer.close()
        finally:
            self._connections.discard(task)
            self.per_client.release(address)

    async def _refuse(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, per_client: bool = False
    ) -> None:
        limit = self.settings.max_connections
        reason = (
            f"too many Wyoming connections: {limit} are open "
            "(AISTACK_STT_WYOMING_MAX_CONNECTIONS); try again later"
        )
        if per_client:
            reason = (
                f"too many Wyoming connections from this address: {self.per_client.limit} "
                "are open (half of AISTACK_STT_WYOMING_MAX_CONNECTIONS); try again later"
            )
        log.warning(
            "wyoming %s: refusing the connection: %s", writer.get_extra_info("peername"), reason
        )
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                write_event(
                    writer, Event("error", {"text": reason, "code": "too_many_connections"})
                ),
                5,
            )
            # Closing a socket with the client's events still unread sends a reset, and a
            # reset makes the client's system drop the error it has not read yet: end our
            # side, then read what the client sent until it closes (at most a second).
            writer.write_eof()
            await asyncio.wait_for(_drain(reader), REFUSE_DRAIN_S)
        writer.close()
