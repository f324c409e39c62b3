"""Refusals as gRPC status codes, each with a machine-readable reason.

The reason travels as the trailing metadata `stt-error-reason` and starts the status
details (`reason: message`), so a client can branch on it without parsing English.
"""

from __future__ import annotations

import grpc

from ..errors import APIError, QueueFull

REASON_KEY = "stt-error-reason"


class Refusal(Exception):
    def __init__(self, code: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # a grpc.StatusCode name
        self.reason = reason
        self.message = message

    @property
    def status(self) -> grpc.StatusCode:
        return grpc.StatusCode[self.code]

    @property
    def details(self) -> str:
        return f"{self.reason}: {self.message}"


def from_api_error(exc: APIError) -> Refusal:
    """A failure of the engine (the same errors HTTP answers with) as a gRPC refusal."""
    if isinstance(exc, QueueFull) or exc.status in (429, 503):
        code = "RESOURCE_EXHAUSTED"
    elif exc.status == 504:
        code = "DEADLINE_EXCEEDED"
    elif exc.status == 404:
        code = "NOT_FOUND"
    elif 400 <= exc.status < 500:
        code = "INVALID_ARGUMENT"
    else:
        code = "INTERNAL"
    return Refusal(code, exc.code or "error", exc.message)
