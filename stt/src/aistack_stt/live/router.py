"""The live endpoints: authorisation, the session limit, and which protocol runs the loop."""

from __future__ import annotations

import collections
import contextlib
import hmac
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from fastapi import APIRouter, WebSocket

from ..config import StreamLimits
from .adapter import CLOSE_POLICY, CLOSE_TRY_LATER, close_with_error
from .aistack_protocol import AistackProtocol
from .loop import receive_loop
from .openai_realtime import RealtimeProtocol
from .session import Transcribe


class SessionCounter:
    """Sessions open now, across both WebSocket endpoints, in all and per client address
    (event loop only: no lock)."""

    def __init__(self, limit: int, per_client: int | None = None) -> None:
        self.limit = limit
        self.per_client = per_client or limit
        self.active = 0
        self.by_client: collections.Counter[str] = collections.Counter()

    def refusal(self, client: str) -> str | None:
        """Which limit a new session from `client` would pass, or None when it fits."""
        if self.active >= self.limit:
            return "max_sessions"
        if self.by_client[client] >= self.per_client:
            return "max_sessions_per_client"
        return None

    @contextlib.contextmanager
    def claim(self, client: str = "") -> Iterator[None]:
        """A slot for one session, held until the block ends; check `refusal` first."""
        if self.refusal(client) is not None:
            raise OverflowError(self.refusal(client))
        self.active += 1
        self.by_client[client] += 1
        try:
            yield
        finally:
            self.active -= 1
            self.by_client[client] -= 1
            if not self.by_client[client]:
                del self.by_client[client]


KEY_PROTOCOL = "openai-insecure-api-key."
# What a browser offers beside the key protocol on /v1/audio/stream, and gets back: a browser
# drops the connection when the server picks none of the protocols it offered.
STREAM_PROTOCOL = "aistack-stt"


def _offered(websocket: WebSocket) -> list[str]:
    return [p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",")]


def authorized(websocket: WebSocket) -> bool:
    """Same key as the HTTP API: the Authorization header, or for browsers (which cannot set
    headers on a WebSocket) the subprotocol `openai-insecure-api-key.<key>`. `?api_key=` is
    still read for old clients; the log shows it as `api_key=***` (logfilters.py)."""
    settings = getattr(websocket.app.state, "settings", None)
    key = getattr(settings, "api_key", None)
    if not key:
        return True
    scheme, _, token = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode()):
        return True
    for proto in _offered(websocket):  # how OpenAI's browser clients pass the key
        if proto.startswith(KEY_PROTOCOL):
            given = proto.removeprefix(KEY_PROTOCOL)
            if hmac.compare_digest(given.encode(), key.encode()):
                return True
    query = websocket.query_params.get("api_key", "")
    return bool(query) and hmac.compare_digest(query.encode(), key.encode())


def default_transcriber(websocket: WebSocket) -> Transcribe:
    return websocket.app.state.engine.transcribe


@dataclass(frozen=True)
class LiveRouter:
    router: APIRouter
    sessions: SessionCounter


def create_live_router(
    limits: StreamLimits | None = None,
    transcriber: Callable[[WebSocket], Transcribe] = default_transcriber,
) -> LiveRouter:
    limits = limits or StreamLimits()
    router = APIRouter()
    sessions = SessionCounter(limits.max_sessions, limits.max_sessions_per_client)
    ids = itertools.count(1)

    async def serve(websocket: WebSocket, protocol: type, sid: str, hint: str) -> None:
        if not authorized(websocket):
            await close_with_error(
                websocket, CLOSE_POLICY, "invalid_api_key", f"missing or wrong API key: {hint}"
            )
            return
        settings = getattr(websocket.app.state, "settings", None)
        beam_size = getattr(settings, "beam_size", 5)
        client = websocket.client.host if websocket.client else ""
        refusal = sessions.refusal(client)
        if refusal is not None:
            if refusal == "max_sessions_per_client":
                message = (
                    f"this client ({client}) already has {limits.max_sessions_per_client} live "
                    "sessions (AISTACK_STT_STREAM_MAX_SESSIONS_PER_CLIENT); close one first"
                )
            else:
                message = (
                    f"the server already has {limits.max_sessions} live sessions "
                    "(AISTACK_STT_STREAM_MAX_SESSIONS); try again later"
                )
            await close_with_error(websocket, CLOSE_TRY_LATER, "too_many_sessions", message)
            return
        with sessions.claim(client):  # no await since refusal(): the slot is still free
            adapter = protocol(websocket, limits, transcriber(websocket), sid, beam_size)
            await receive_loop(websocket, limits, adapter)

    @router.websocket("/v1/audio/stream")
    async def stream(websocket: WebSocket) -> None:
        offered = _offered(websocket)
        await websocket.accept(subprotocol=STREAM_PROTOCOL if STREAM_PROTOCOL in offered else None)
        await serve(
            websocket,
            AistackProtocol,
            f"s{next(ids)}",
            f"send Authorization: Bearer <key>, or from a browser the subprotocols "
            f"{STREAM_PROTOCOL} and {KEY_PROTOCOL}<key>",
        )

    @router.websocket("/v1/realtime")
    async def realtime(websocket: WebSocket) -> None:
        offered = websocket.headers.get("sec-websocket-protocol", "")
        await websocket.accept(
            subprotocol="realtime" if "realtime" in offered.split(", ") else None
        )
        await serve(
            websocket,
            RealtimeProtocol,
            f"sess_{next(ids)}",
            f"send Authorization: Bearer <key>, or from a browser the subprotocols realtime "
            f"and {KEY_PROTOCOL}<key>",
        )

    return LiveRouter(router, sessions)
