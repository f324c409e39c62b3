"""The `stt.STTBackend` servicer: API key, sessions and refusals; the stream is stream.py's.

It runs on the app's event loop (grpc.aio), so it reaches the same engine, models, session
limits and metrics as the HTTP and WebSocket protocols; decoding happens in the engine's
threads, VAD in worker threads.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from ..config import StreamLimits
from ..live.options import StreamOptions
from ..live.router import SessionCounter
from ..live.session import Transcribe
from ..metrics import Metrics
from . import stt_pb2 as pb
from . import stt_pb2_grpc as pb_grpc
from .errors import REASON_KEY, Refusal
from .options import session_options, session_response
from .sessions import SessionRegistry
from .stream import GrpcStream

CREATE, STREAM = "/stt.STTBackend/CreateSession", "/stt.STTBackend/StreamingRecognize"


@dataclass(frozen=True)
class GrpcServices:
    """What a gRPC call may use of the app."""

    transcriber: Callable[[StreamOptions], Transcribe]  # the engine, as the session's options ask
    sessions: SessionCounter  # shared with the WebSocket endpoints
    limits: StreamLimits
    metrics: Metrics
    api_key: str | None
    beam_size: int
    defaults: StreamOptions
    default_profile: str


def peer_host(peer: str) -> str:
    """`ipv4:127.0.0.1:5000` / `ipv6:[::1]:5000` → the address alone."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        return rest.rpartition(":")[0].strip("[]")
    if kind == "ipv4":
        return rest.rpartition(":")[0]
    return rest


class STTBackend(pb_grpc.STTBackendServicer):
    def __init__(self, services: GrpcServices) -> None:
        self.services = services
        limits = services.limits
        self.registry = SessionRegistry(4 * limits.max_sessions, limits.idle_timeout_s)

    async def CreateSession(self, request: pb.SessionRequest, context) -> pb.SessionResponse:  # noqa: N802 (the proto's name)
        s = self.services
        try:
            self._authorize(context)
            options = session_options(request, s.defaults)
            registered = self.registry.create(
                request.session_id, options, dict(request.attributes), request.require_token
            )
        except Refusal as exc:
            await self._abort(context, CREATE, exc)
        s.metrics.requests.inc(endpoint=CREATE, status="OK")
        return session_response(
            registered.options, registered.attributes, registered.token, s.default_profile
        )

    async def StreamingRecognize(self, request_iterator, context):  # noqa: N802 (the proto's name)
        s = self.services
        stream: GrpcStream | None = None
        try:
            self._authorize(context)
            chunks = request_iterator.__aiter__()
            try:
                first = await asyncio.wait_for(anext(chunks, None), s.limits.idle_timeout_s)
            except TimeoutError:
                raise Refusal(
                    "DEADLINE_EXCEEDED",
                    "idle_timeout",
                    f"no AudioChunk within {s.limits.idle_timeout_s:g} s",
                ) from None
            if first is None:
                raise Refusal("INVALID_ARGUMENT", "no_audio", "the stream sent no AudioChunk")
            registered = self.registry.claim(first.session_id, first.session_token)
            try:
                client = peer_host(context.peer())
                refusal = s.sessions.refusal(client)
                if refusal is not None:
                    raise Refusal("RESOURCE_EXHAUSTED", "too_many_sessions", _full(s, refusal))
                with s.sessions.claim(client):
                    stream = GrpcStream(
                        registered, s.limits, s.transcriber(registered.options), s.beam_size
                    )
                    async for result in stream.results(first, chunks):
                        yield result
            finally:
                self.registry.forget(registered)
        except Refusal as exc:
            extra = stream.timings.metadata() if stream is not None else ()
            await self._abort(context, STREAM, exc, extra)
        s.metrics.requests.inc(endpoint=STREAM, status="OK")
        context.set_trailing_metadata(stream.timings.metadata() if stream else ())

    def _authorize(self, context) -> None:
        key = self.services.api_key
        if not key:
            return
        for name, value in context.invocation_metadata() or ():
            given = None
            if name == "authorization":
                scheme, _, token = str(value).partition(" ")
                given = token.strip() if scheme.lower() == "bearer" else None
            elif name == "x-api-key":
                given = str(value).strip()
            if given and hmac.compare_digest(given.encode(), key.encode()):
                return
        raise Refusal(
            "UNAUTHENTICATED",
            "invalid_api_key",
            "missing or wrong API key: send the metadata authorization: Bearer <key> "
            "(or x-api-key: <key>)",
        )

    async def _abort(self, context, method: str, exc: Refusal, extra=()) -> None:
        self.services.metrics.requests.inc(endpoint=method, status=exc.code)
        await context.abort(
            exc.status, exc.details, trailing_metadata=((REASON_KEY, exc.reason), *extra)
        )


def _full(s: GrpcServices, refusal: str) -> str:
    if refusal == "max_sessions_per_client":
        return (
            f"this client already has {s.limits.max_sessions_per_client} live sessions "
            "(AISTACK_STT_STREAM_MAX_SESSIONS_PER_CLIENT); close one first"
        )
    return (
        f"the server already has {s.limits.max_sessions} live sessions "
        "(AISTACK_STT_STREAM_MAX_SESSIONS); try again later"
    )
