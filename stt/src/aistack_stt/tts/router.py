"""OpenAI's speech endpoint and the voice lists clients look for.

    POST /v1/audio/speech    {model, input, voice, response_format, speed} -> audio, streamed
    GET  /v1/audio/voices    {"voices": [{"id", "name"}]}       (Open WebUI's voice list)
    GET  /v1/audio/models    {"models": [{"id"}]}               (Open WebUI's model list)

The JSON body is read by hand, like the transcription form, so every bad field is a 400 in
OpenAI's error shape naming it. Everything that can be refused (voice, format, length, a full
queue) is checked before the response starts; after that the audio is streamed sentence by
sentence.
"""

from __future__ import annotations

import json
import math

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from ..api_schema import errors
from ..errors import APIError, bad_param
from ..intake import limited_receive
from .encoding import FORMATS, check_format, encode
from .service import TtsService, service_of
from .voices import DEFAULT, OPENAI_MODELS, PROGRAM

router = APIRouter()

_BODY_SLACK = 64 * 1024  # JSON around the text


async def _read_json(request: Request, tts: TtsService) -> dict:
    settings = request.app.state.settings
    # Up to 4 bytes per character of UTF-8 (more when escaped as \\uXXXX: the cap on the text
    # itself is checked after parsing).
    limit = tts.settings.max_input_chars * 6 + _BODY_SLACK

    def too_large() -> APIError:
        return APIError(
            413,
            f"the request body is larger than {limit} bytes; input may hold at most "
            f"{tts.settings.max_input_chars} characters (AISTACK_STT_TTS_MAX_INPUT_CHARS)",
            param="input",
            code="input_too_long",
        )

    receive = limited_receive(request.receive, limit, settings.upload_timeout_s, too_large)
    body = await Request(request.scope, receive).body()
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise APIError(
            400, "send the request body as JSON: {\"model\", \"input\", \"voice\"}",
            code="invalid_request",
        ) from None  # fmt: skip
    if not isinstance(data, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_request")
    return data


def _text(data: dict, name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise bad_param(name, f"{name} must be a string")
    return value


def _speed(data: dict) -> float:
    value = data.get("speed", 1.0)
    if value is None:
        return 1.0
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise bad_param("speed", f"speed {value!r} is not a number")
    if not 0.25 <= value <= 4.0:
        raise bad_param("speed", f"speed {value} is outside 0.25 to 4.0")
    return float(value)


# What /openapi.json says of the JSON body read by hand below (OpenAI's fields).
_SPEECH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["input"],
                    "properties": {
                        "input": {"type": "string", "minLength": 1, "maxLength": 4096},
                        "model": {"type": "string", "default": OPENAI_MODELS[0]},
                        "voice": {"type": "string", "default": DEFAULT},
                        "response_format": {
                            "type": "string", "enum": list(FORMATS), "default": "mp3"
                        },
                        "speed": {"type": "number", "minimum": 0.25, "maximum": 4.0},
                        "stream_format": {"type": "string", "enum": ["audio"]},
                    },
                }
            }
        },
    }
}  # fmt: skip
_AUDIO = {
    200: {
        "description": "The speech, streamed sentence by sentence",
        "content": {fmt.media_type: {} for fmt in FORMATS.values()},
    }
}


@router.post(
    "/v1/audio/speech",
    openapi_extra=_SPEECH_BODY,
    responses={**_AUDIO, **errors(400, 401, 404, 413, 503)},
)
async def speech(request: Request) -> Response:
    tts = service_of(request.app)
    data = await _read_json(request, tts)
    text = _text(data, "input")
    if text is None or not text.strip():
        raise bad_param("input", "input is missing or empty: send the text to speak")
    tts.check_length(text, "input", ": send it in parts", param="input")
    voice = await tts.voice_for(_text(data, "model"), _text(data, "voice"))
    name = (_text(data, "response_format") or "mp3").strip().lower()
    fmt = check_format(name)
    speed = _speed(data)
    stream_format = _text(data, "stream_format")
    if stream_format not in (None, "audio"):
        raise bad_param(
            "stream_format", f"stream_format {stream_format!r} is not supported; use audio"
        )
    tts.synthesizer.admit()  # 503 now, not in the middle of a stream

    async def body():
        try:
            blocks = tts.synthesizer.speak(voice, text, speed)
            async for part in encode(blocks, name, voice.sample_rate):
                yield part
        finally:
            tts.synthesizer.release()

    return StreamingResponse(
        body(), media_type=fmt.media_type, headers={"X-Voice": voice.name}
    )


@router.get("/v1/audio/voices", responses=errors(404))
def voices(request: Request) -> dict:
    tts = service_of(request.app, required=False)
    if tts is None:
        return {"voices": [], "state": "no voice"}
    return {
        "voices": [
            {"id": v.name, "name": v.name, "language": v.language, "description": v.description}
            for v in tts.catalog.voices.values()
        ],
        "state": tts.synthesizer.state,  # loading, ok, or why the voices did not load
    }


@router.get("/v1/audio/models")
def models(request: Request) -> dict:
    tts = service_of(request.app, required=False)
    if tts is None:
        return {"models": []}
    return {"models": [{"id": m} for m in (*OPENAI_MODELS, PROGRAM, *tts.catalog.names())]}
