"""OpenAI's audio API and the Speaches model endpoints.

The multipart form is parsed by hand rather than with FastAPI's Form parameters: OpenAI
clients send `timestamp_granularities[]` and booleans as strings, and every bad field must
come back as a 400 in OpenAI's error shape naming the field, not as a 422.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from faster_whisper.tokenizer import _LANGUAGE_CODES
from starlette.datastructures import UploadFile

from . import formats, silence
from .api_schema import TRANSCRIPT, audio_form, errors
from .audio import decode
from .config import RESPONSE_FORMATS
from .engine import Segment, Transcriber, TranscriptionRequest, TranscriptionResult
from .errors import APIError, bad_param
from .intake import ENVELOPE_BYTES, limited_receive
from .live.decoding import PROFILES
from .model_names import DEFAULT_ALIAS
from .models import ModelManager

router = APIRouter()
T = TypeVar("T")

GRANULARITIES = ("segment", "word")
_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class AudioForm:
    data: bytes
    content_type: str | None
    filename: str | None
    model: str
    language: str | None
    prompt: str | None
    hotwords: str | None  # Speaches' field: comma-separated names (vocabulary.py)
    response_format: str
    temperature: float | None
    granularities: tuple[str, ...]
    stream: bool
    silence: silence.SilenceOptions  # defaults, or the request's extra fields (silence.py)
    decode_profile: str | None = None  # live/decoding.py's PROFILES; None: the server's beam
    languages: tuple[str, ...] = ()  # detection's allow-list; empty: the server's


async def _read_form(request: Request) -> AudioForm:
    settings = request.app.state.settings
    ctype = request.headers.get("content-type", "")
    if not ctype.startswith("multipart/form-data"):
        raise APIError(
            400,
            "send the request as multipart/form-data with the audio in a field named file",
            param="file",
            code="invalid_request",
        )
    # Counted and timed as it arrives (intake.py): the limit holds without Content-Length.
    receive = limited_receive(
        request.receive,
        settings.max_upload_bytes + ENVELOPE_BYTES,
        settings.upload_timeout_s,
        request.app.state.too_large,
    )
    try:
        form = await Request(request.scope, receive).form(max_files=1, max_fields=64)
    except APIError:
        raise
    except Exception as exc:
        raise APIError(400, f"malformed multipart body: {exc}", code="invalid_request") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise bad_param("file", "the field file is missing or is not a file upload")
    data = bytearray()
    while chunk := await upload.read(_CHUNK):
        data += chunk
        if len(data) > settings.max_upload_bytes:
            raise request.app.state.too_large()

    def text(name: str) -> str | None:
        value = form.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise bad_param(name, f"{name} must be a text field, not a file")
        return value.strip()

    model = text("model") or DEFAULT_ALIAS
    language = text("language")
    language = language.lower() if language else settings.language
    if language is not None and language not in _LANGUAGE_CODES:
        raise bad_param(
            "language", f"language {language!r} is not an ISO-639-1 code Whisper knows (e.g. en)"
        )
    response_format = text("response_format") or "json"
    if response_format not in RESPONSE_FORMATS:
        raise bad_param(
            "response_format",
            f"response_format {response_format!r} is not one of {', '.join(RESPONSE_FORMATS)}",
        )
    temperature = None
    raw_temp = text("temperature")
    if raw_temp:
        try:
            temperature = float(raw_temp)
        except ValueError:
            raise bad_param("temperature", f"temperature {raw_temp!r} is not a number") from None
        if not 0.0 <= temperature <= 1.0:
            raise bad_param("temperature", f"temperature {temperature} is outside 0 to 1")
    granularities: list[str] = []
    for key in ("timestamp_granularities[]", "timestamp_granularities"):
        for value in form.getlist(key):
            if not isinstance(value, str) or value.strip() not in GRANULARITIES:
                raise bad_param(
                    "timestamp_granularities",
                    f"timestamp_granularities {value!r} is not one of segment, word",
                )
            granularities.append(value.strip())
    if granularities and response_format != "verbose_json":
        raise bad_param(
            "timestamp_granularities",
            "timestamp_granularities needs response_format=verbose_json",
        )
    raw_stream = (text("stream") or "").lower()
    if raw_stream not in _TRUE + _FALSE:
        raise bad_param("stream", f"stream {raw_stream!r} is not true or false")
    try:
        silence_options = silence.from_form(text)
    except silence.SilenceOptionError as exc:
        raise bad_param(exc.field, str(exc)) from None
    profile = text("decode_profile") or None
    if profile is not None and profile not in PROFILES:
        raise bad_param(
            "decode_profile", f"decode_profile {profile!r} is not one of {', '.join(PROFILES)}"
        )
    languages = tuple(c.strip().lower() for c in (text("languages") or "").split(",") if c.strip())
    for code in languages:
        if code not in _LANGUAGE_CODES:
            raise bad_param("languages", f"languages: {code!r} is not a code Whisper knows")
    return AudioForm(
        decode_profile=profile,
        languages=languages,
        data=bytes(data),
        content_type=upload.content_type,
        filename=upload.filename,
        model=model,
        language=language,
        prompt=text("prompt") or None,
        hotwords=text("hotwords") or None,
        response_format=response_format,
        temperature=temperature,
        granularities=tuple(dict.fromkeys(granularities)),
        stream=raw_stream in _TRUE,
        silence=silence_options,
    )


async def _handle(request: Request, task: str) -> Response:
    form = await _read_form(request)
    engine: Transcriber = request.app.state.engine
    models: ModelManager = request.app.state.models
    models.resolve(form.model)  # a 404 for an unknown model comes before decoding work
    settings = request.app.state.settings
    # Decoding is CPU and memory before admission to the queue: a bounded number at once
    # (intake.py), each stopped at max_audio_s (audio.py).
    async with request.app.state.decodes.slot():
        audio = await asyncio.to_thread(
            decode, form.data, form.content_type, form.filename, settings.max_audio_s
        )
    job = TranscriptionRequest(
        audio=audio,
        model=form.model,
        task=task,
        language=form.language,
        prompt=form.prompt,
        hotwords=form.hotwords,
        temperature=form.temperature,
        word_timestamps="word" in form.granularities,
        beam_size=settings.beam_size,
        silence=form.silence,
    )
    # A decode profile and the language allow-list, as live sessions have them.
    job = request.app.state.decoding.for_request(job, form.decode_profile, form.languages)
    if form.stream:
        return await _stream(engine, job)
    # A client that hangs up frees its place in the queue at once.
    result = await cancel_on_disconnect(request.receive, engine.transcribe(job))
    return _render(result, form)


async def cancel_on_disconnect(receive: Callable[[], Awaitable[dict]], work: Awaitable[T]) -> T:
    """Await `work`, cancelling it when the HTTP client hangs up (its slot is freed at once).

    A plain (non-streaming) response is not cancelled by the server when the client goes
    away, so without this a queue of abandoned requests would still be decoded. Once the body
    has been read, the next ASGI message can only be `http.disconnect`; waiting for it is
    reliable through middleware, unlike polling `Request.is_disconnected()`.
    """

    async def watch() -> None:
        while (await receive()).get("type") != "http.disconnect":
            pass

    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(watch())
    try:
        await asyncio.wait([task, watcher], return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        # Nobody will read this answer; it only ends the request cleanly (nginx's 499).
        raise APIError(499, "the client closed the connection", code="client_closed")
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()


def _render(result: TranscriptionResult, form: AudioForm) -> Response:
    fmt = form.response_format
    if fmt == "json":
        return JSONResponse(formats.as_json(result))
    if fmt == "verbose_json":
        words = "word" in form.granularities
        segments = not form.granularities or "segment" in form.granularities
        return JSONResponse(formats.as_verbose_json(result, words=words, segments=segments))
    if fmt == "srt":
        return PlainTextResponse(formats.as_srt(result))
    if fmt == "vtt":
        return PlainTextResponse(formats.as_vtt(result))
    return PlainTextResponse(result.text)


async def _stream(engine: Transcriber, job: TranscriptionRequest) -> Response:
    """Server-sent events: `transcript.text.delta` per segment, then `transcript.text.done`.

    The first segment (or the failure) is awaited before the response starts, so a model
    that cannot load still gets its proper status code instead of a broken stream.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Segment] = asyncio.Queue()
    task = asyncio.create_task(
        engine.transcribe(job, on_segment=lambda s: loop.call_soon_threadsafe(queue.put_nowait, s))
    )
    first = asyncio.ensure_future(queue.get())
    await asyncio.wait([task, first], return_when=asyncio.FIRST_COMPLETED)
    if task.done() and not first.done():
        first.cancel()
        task.result()  # raises the APIError, if any, as a normal response
        first = None

    async def events() -> AsyncIterator[str]:
        emitted = ""
        texts: list[str] = []

        def delta(seg: Segment) -> str | None:
            nonlocal emitted
            texts.append(seg.text)
            # Deltas add up exactly to the final text: leading space of the first segment
            # and trailing space of the last are never sent.
            total = "".join(texts).strip()
            piece, emitted = total[len(emitted) :], total
            return formats.sse({"type": "transcript.text.delta", "delta": piece}) if piece else None

        try:
            if first is not None and (event := delta(first.result())) is not None:
                yield event
            while not (task.done() and queue.empty()):
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait([task, getter], return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    if (event := delta(getter.result())) is not None:
                        yield event
                else:
                    getter.cancel()
            try:
                result = task.result()
            except APIError as exc:
                yield formats.sse({"type": "error", **exc.body()})
                return
            yield formats.sse({"type": "transcript.text.done", "text": result.text})
        finally:
            if not task.done():
                task.cancel()

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


_AUDIO_ERRORS = errors(400, 401, 404, 408, 413, 503, 504)


def _audio_route(path: str, task: str, name: str) -> None:
    """POST `path`: an uploaded file transcribed (or translated), the OpenAI way."""

    async def endpoint(request: Request) -> Response:
        return await _handle(request, task)

    router.add_api_route(
        path, endpoint, methods=["POST"], name=name, openapi_extra=audio_form(task),
        responses={**TRANSCRIPT, **_AUDIO_ERRORS},
    )


_audio_route("/v1/audio/transcriptions", "transcribe", "transcriptions")
_audio_route("/v1/audio/translations", "translate", "translations")


def _model_card(model_id: str, task: str = "automatic-speech-recognition") -> dict:
    # `task` as Speaches writes it, so its clients can tell Whisper models from voices.
    return {
        "id": model_id, "object": "model", "created": 0, "owned_by": "aistack-stt", "task": task
    }  # fmt: skip


def _voice_ids(request: Request) -> list[str]:
    tts = getattr(request.app.state, "tts", None)
    return tts.catalog.names() if tts is not None else []


@router.get("/v1/models", responses=errors(401, 503))
def list_models(request: Request) -> dict:
    models: ModelManager = request.app.state.models
    cards = [_model_card(m) for m in models.available()]
    cards += [_model_card(v, "text-to-speech") for v in _voice_ids(request)]
    return {"object": "list", "data": cards}


@router.get("/v1/models/{model_id:path}", responses=errors(400, 401, 404, 503))
def get_model(request: Request, model_id: str) -> dict:
    if model_id in _voice_ids(request):
        return _model_card(model_id, "text-to-speech")
    models: ModelManager = request.app.state.models
    models.resolve(model_id)
    return _model_card(model_id)


@router.get("/api/ps", responses=errors(401, 503))
def running_models(request: Request) -> dict:
    models: ModelManager = request.app.state.models
    loaded = models.loaded()
    now = time.monotonic()
    return {
        "models": [m.id for m in loaded],
        "details": [
            {
                "id": m.id,
                "source": m.source,
                "multilingual": m.multilingual,
                "in_use": m.in_use,
                "idle_seconds": round(now - m.last_used, 1),
            }
            for m in loaded
        ],
    }


@router.post("/api/ps/{model_id:path}", status_code=201, responses=errors(400, 401, 404, 409, 503))
async def load_model(request: Request, model_id: str) -> JSONResponse:
    models: ModelManager = request.app.state.models
    if models.is_loaded(model_id):
        raise APIError(409, f"model {model_id!r} is already loaded", code="already_loaded")
    models.resolve(model_id)
    await asyncio.to_thread(models.get, model_id)
    return JSONResponse({"message": f"model {model_id!r} loaded"}, status_code=201)


@router.delete("/api/ps/{model_id:path}", responses=errors(400, 401, 404, 503))
def unload_model(request: Request, model_id: str) -> dict:
    models: ModelManager = request.app.state.models
    if not models.unload(model_id):
        raise APIError(
            404, f"model {model_id!r} is not loaded", type="not_found_error", code="not_loaded"
        )
    return {"message": f"model {model_id!r} unloaded"}
