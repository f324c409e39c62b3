"""The gRPC server's lifetime: bound and started with the app, stopped with it (app.py)."""

from __future__ import annotations

import logging
import socket

import grpc

from . import stt_pb2_grpc as pb_grpc
from .service import GrpcServices, STTBackend

__all__ = ["GrpcServer", "GrpcServices", "check_port"]

log = logging.getLogger("aistack_stt.grpc")
ENVELOPE = 4096  # room for a chunk's other fields beside its audio


def check_port(host: str, port: int) -> None:
    """Fail with one line when the port is taken (gRPC would only say it in a log)."""
    try:
        family = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)[0][0]
        socket.create_server((host, port), family=family).close()
    except OSError as exc:
        raise OSError(
            f"cannot listen for gRPC on {host}:{port}: {exc.strerror or exc}; free the port, "
            "choose another (AISTACK_STT_GRPC_PORT) or switch gRPC off (0)"
        ) from None


class GrpcServer:
    def __init__(self, host: str, port: int, services: GrpcServices) -> None:
        self.host = host
        self.requested_port = port
        self.services = services
        self.port = 0  # bound port, known after start
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        limits = self.services.limits
        # Oversized chunks reach the servicer, which refuses them with INVALID_ARGUMENT and a
        # reason; only far larger messages are stopped by gRPC itself.
        largest = 4 * limits.max_frame_bytes + ENVELOPE
        self._server = grpc.aio.server(
            options=[
                ("grpc.so_reuseport", 0),
                ("grpc.max_receive_message_length", largest),
                ("grpc.max_send_message_length", 1024 * 1024),
            ],
            maximum_concurrent_rpcs=2 * limits.max_sessions + 32,
        )
        pb_grpc.add_STTBackendServicer_to_server(STTBackend(self.services), self._server)
        address = (
            f"[{self.host}]:{self.requested_port}"
            if ":" in self.host
            else (f"{self.host}:{self.requested_port}")
        )
        try:
            self.port = self._server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError(f"cannot listen for gRPC on {address}: {exc}") from None
        await self._server.start()
        log.info("gRPC server (stt.STTBackend) listening on %s:%d", self.host, self.port)

    async def stop(self, grace: float = 5.0) -> None:
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None
