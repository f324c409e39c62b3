"""What `/openapi.json` says about the API that FastAPI cannot see by itself.

The audio endpoints read their multipart form by hand (api.py says why), so their request
body is described here, from the same names the parser uses (`RESPONSE_FORMATS`, the silence
fields). Every error is OpenAI's body, `ErrorBody`, with the statuses each route can answer,
so that schema-based fuzzing (stt/tests/test_openapi_fuzz.py) can check what comes back.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from .config import RESPONSE_FORMATS
from .model_names import DEFAULT_ALIAS, MAX_ID_CHARS
from .silence import _RANGES as SILENCE_RANGES  # the ranges the parser checks
from .silence import DEFAULT as DEFAULT_SILENCE
from .silence import SilenceOptions


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(BaseModel):
    """OpenAI's error shape: clients show `error.message` to the user."""

    error: ErrorDetail


_WHY = {
    400: "A bad field (`param` names it), undecodable or empty audio, a model id that is a path",
    401: "API key missing or wrong (`AISTACK_STT_API_KEY`)",
    404: "The model is not served here (the message lists those that are), or not loaded",
    408: "The body took longer than `AISTACK_STT_UPLOAD_TIMEOUT_S` to arrive; connection closed",
    409: "The model is already loaded",
    413: "The upload is larger than `AISTACK_STT_MAX_UPLOAD_MB`, or its audio is longer than "
    "`AISTACK_STT_MAX_AUDIO_S`",
    503: "The model failed to load, the queue is full (`Retry-After`), or too many connections",
    504: "The transcription did not finish within `AISTACK_STT_REQUEST_TIMEOUT_S`",
}


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route: each status with its reason and OpenAI's error body."""
    return {status: {"model": ErrorBody, "description": _WHY[status]} for status in statuses}


_SILENCE_TYPES = {bool: "boolean", int: "integer", float: "number"}
_SILENCE_RANGES = {name: (low, high) for name, low, high in SILENCE_RANGES}


def _silence_properties() -> dict[str, dict]:
    props = {}
    for f in fields(SilenceOptions):
        kind = type(getattr(DEFAULT_SILENCE, f.name))
        prop: dict[str, Any] = {
            "type": _SILENCE_TYPES[kind],
            "default": getattr(DEFAULT_SILENCE, f.name),
            "description": "silence detection override (see stt/README.md)",
        }
        if f.name in _SILENCE_RANGES:
            prop["minimum"], prop["maximum"] = _SILENCE_RANGES[f.name]
        props[f.name] = prop
    return props


def audio_form(task: str) -> dict[str, Any]:
    """`openapi_extra` for the transcription and translation endpoints: the multipart body."""
    properties: dict[str, Any] = {
        "file": {
            "type": "string",
            "format": "binary",
            "description": "the audio: wav, mp3, ogg/opus, webm, m4a, flac or raw 16 kHz PCM",
        },
        "model": {
            "type": "string",
            "default": DEFAULT_ALIAS,
            "maxLength": MAX_ID_CHARS,
            "description": "a model id from GET /v1/models",
        },
        "prompt": {"type": "string"},
        "response_format": {"type": "string", "enum": list(RESPONSE_FORMATS), "default": "json"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 1},
        "stream": {"type": "boolean", "default": False, "description": "server-sent events"},
        **_silence_properties(),
    }
    if task == "transcribe":
        properties["language"] = {"type": "string", "description": "ISO 639-1, e.g. en"}
        properties["timestamp_granularities[]"] = {
            "type": "array",
            "items": {"type": "string", "enum": ["segment", "word"]},
            "description": "needs response_format verbose_json",
        }
    return {
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {"type": "object", "required": ["file"], "properties": properties}
                }
            },
        }
    }


TRANSCRIPT = {
    200: {
        "description": "The text: JSON for `json`/`verbose_json`, plain text for `text`, "
        "`srt`, `vtt`; server-sent events with `stream`",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["text"],
                    "properties": {"text": {"type": "string"}},
                }
            },
            "text/plain": {"schema": {"type": "string"}},
            "text/event-stream": {"schema": {"type": "string"}},
        },
    }
}


def install(app: FastAPI) -> None:
    """Drop FastAPI's 422 from the schema: the server answers bad input with a 400 (errors.py)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
