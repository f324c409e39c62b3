"""gRPC sessions between `CreateSession` and the end of their `StreamingRecognize` call.

`CreateSession` registers a session under the client's `session_id` with its options, and a
token when the client asks for one; `StreamingRecognize` names the session in its first
chunk and claims it for the length of the stream. A session never streamed expires after the
stream idle timeout; a finished stream forgets its session, so the id may be used again.
Event loop only: no lock.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

from ..live.options import StreamOptions
from .errors import Refusal

MAX_ID_CHARS = 128
MAX_ATTRIBUTES = 32
MAX_ATTRIBUTE_CHARS = 256


@dataclass
class RegisteredSession:
    session_id: str
    options: StreamOptions
    attributes: dict[str, str]
    token: str | None
    created: float = field(default_factory=time.monotonic)
    streaming: bool = False


class SessionRegistry:
    def __init__(self, max_pending: int, expire_s: float) -> None:
        self.max_pending = max_pending
        self.expire_s = expire_s
        self._sessions: dict[str, RegisteredSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def create(
        self,
        session_id: str,
        options: StreamOptions,
        attributes: dict[str, str],
        require_token: bool,
    ) -> RegisteredSession:
        self._expire()
        check_id(session_id)
        check_attributes(attributes)
        if session_id in self._sessions:
            raise Refusal(
                "ALREADY_EXISTS",
                "session_exists",
                f"session_id {session_id!r} is already in use; choose another",
            )
        pending = sum(1 for s in self._sessions.values() if not s.streaming)
        if pending >= self.max_pending:
            raise Refusal(
                "RESOURCE_EXHAUSTED",
                "too_many_sessions",
                f"{pending} sessions are created and not yet streamed; stream or let them "
                f"expire ({self.expire_s:g} s) first",
            )
        token = secrets.token_urlsafe(24) if require_token else None
        session = RegisteredSession(session_id, options, dict(attributes), token)
        self._sessions[session_id] = session
        return session

    def claim(self, session_id: str, token: str) -> RegisteredSession:
        """The session a stream's first chunk names, checked against its token."""
        self._expire()
        session = self._sessions.get(session_id) if session_id else None
        if session is None:
            raise Refusal(
                "UNAUTHENTICATED",
                "unknown_session",
                f"no session {session_id!r}: call CreateSession first and name its session_id "
                "in the first AudioChunk",
            )
        if session.token is not None and not hmac.compare_digest(
            token.encode(), session.token.encode()
        ):
            raise Refusal(
                "PERMISSION_DENIED",
                "invalid_session_token",
                f"wrong or missing session_token for session {session_id!r}; send the token "
                "CreateSession returned",
            )
        if session.streaming:
            raise Refusal(
                "ALREADY_EXISTS",
                "session_streaming",
                f"session {session_id!r} already has an open stream",
            )
        session.streaming = True
        return session

    def forget(self, session: RegisteredSession) -> None:
        if self._sessions.get(session.session_id) is session:
            del self._sessions[session.session_id]

    def _expire(self) -> None:
        now = time.monotonic()
        for sid, s in list(self._sessions.items()):
            if not s.streaming and now - s.created > self.expire_s:
                del self._sessions[sid]


def check_id(session_id: str) -> None:
    if not session_id or len(session_id) > MAX_ID_CHARS or not session_id.isprintable():
        raise Refusal(
            "INVALID_ARGUMENT",
            "invalid_session_id",
            f"session_id must be 1-{MAX_ID_CHARS} printable characters",
        )


def check_attributes(attributes: dict[str, str]) -> None:
    if len(attributes) > MAX_ATTRIBUTES:
        raise Refusal(
            "INVALID_ARGUMENT",
            "invalid_attributes",
            f"{len(attributes)} attributes is over the limit of {MAX_ATTRIBUTES}",
        )
    for key, value in attributes.items():
        if len(key) > MAX_ATTRIBUTE_CHARS or len(value) > MAX_ATTRIBUTE_CHARS:
            raise Refusal(
                "INVALID_ARGUMENT",
                "invalid_attributes",
                f"attribute {key[:40]!r}: keys and values are at most {MAX_ATTRIBUTE_CHARS} "
                "characters",
            )
