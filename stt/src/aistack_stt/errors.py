"""Errors a client can cause, rendered as OpenAI's error body.

OpenAI clients (and Open WebUI) read `error.message` to show the user what went wrong, so
every failure the server reports, including ones FastAPI raises, uses this one shape:
`{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException


@dataclass
class APIError(Exception):
    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


class QueueFull(APIError):
    """Too many requests admitted: refuse now rather than let timeouts pile up (503)."""

    def __init__(self, retry_after: int, limit: int) -> None:
        super().__init__(
            503,
            f"the server is busy: {limit} transcriptions are already queued or running "
            f"(AISTACK_STT_MAX_QUEUE); retry in {retry_after} s",
            type="server_error",
            code="queue_full",
        )
        self.retry_after = retry_after


def bad_param(param: str, message: str) -> APIError:
    return APIError(400, message, param=param, code="invalid_value")


def error_response(err: APIError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else {}
    if isinstance(err, QueueFull):  # OpenAI clients honour Retry-After when they retry
        headers["Retry-After"] = str(err.retry_after)
    if err.status in (408, 413):
        # The body was not read to its end (too big, too slow): the connection cannot carry
        # another request, and a client must not keep it open by sending the rest.
        headers["Connection"] = "close"
    return JSONResponse(err.body(), status_code=err.status, headers=headers or None)


_STATUS_TYPES = {404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error"}


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = _STATUS_TYPES.get(exc.status_code, "invalid_request_error")
        return error_response(APIError(exc.status_code, str(exc.detail), type=kind))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        param = ".".join(loc) or None
        msg = first.get("msg", "invalid request")
        return error_response(bad_param(param or "request", f"{param}: {msg}"))

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Last resort: the client still gets the OpenAI shape, never a bare 500 page.
        return error_response(
            APIError(500, f"internal error: {type(exc).__name__}: {exc}", type="server_error")
        )
