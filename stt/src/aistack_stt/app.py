"""The FastAPI application: `create_app(settings)` wires settings, models, engine and routes.

Routers live in their own modules (`api.py` for the OpenAI/Speaches API, `health.py` for
liveness, readiness and metrics); more can be added with `app.include_router`. Shared objects
are kept on `app.state`: `settings` (as at start; the model settings that may change since
are the model manager's), `metrics`, `models` (ModelManager), `engine` (a `Transcriber`,
engine.py: the speech gate in front of the scheduler, or in front of the one passed in),
`sessions` (live sessions open now), `readiness` and `swap` (model_swap.py: the preload, then
a model swap per SIGHUP).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

from . import __version__, api_schema, tts
from .api import router as api_router
from .config import Settings
from .engine import Transcriber
from .errors import APIError, error_response, install_handlers
from .hass_names import HassNames
from .health import router as health_router
from .intake import ENVELOPE_BYTES, DecodeSlots, too_large
from .live import create_live_router
from .live.capture import CaptureStore
from .live.decoding import LiveDecoding
from .live.options import StreamOptions
from .metrics import Metrics
from .model_reload import read_plan
from .model_swap import ModelSwap
from .models import ModelManager
from .scheduling import Scheduler
from .speech_gate import SpeechGate
from .status import router as status_router
from .vocabulary import Vocabulary, VocabularyPrompt, model_token_counter, parse_terms
from .vram import VramGuard
from .wyoming import Services, WyomingServer

log = logging.getLogger("aistack_stt")

# Open WebUI asks for the voice lists without the key; they hold only voice names.
PUBLIC_PATHS = ("/health", "/health/ready", "/v1/audio/voices", "/v1/audio/models")


@dataclass
class Readiness:
    """Whether the default model has been loaded, and why not if it failed."""

    state: str = "loading"  # loading | ok | error
    error: str | None = None

    def set(self, state: str, error: str | None = None) -> None:
        # One assignment each, from the swap thread; /health reads them as they are.
        self.state, self.error = state, error


def _load_default(app: FastAPI) -> None:
    state: Readiness = app.state.readiness
    models: ModelManager = app.state.models
    try:
        models.get(models.default_id)
        interim = models.interim_id
        if interim:  # loaded and warmed up before ready too: the first interim is quick
            models.get(interim)
    except APIError as exc:
        state.set("error", exc.message)
        log.error("default model did not load: %s", exc.message)
    except Exception as exc:  # keep the server alive to report the failure on /health
        state.set("error", f"{type(exc).__name__}: {exc}")
        log.exception("default model did not load")
    else:
        state.set("ok")


class _Guard(BaseHTTPMiddleware):
    """API key check, upload size pre-check and request metrics, in one pass."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        settings: Settings = request.app.state.settings
        metrics: Metrics = request.app.state.metrics
        started = time.monotonic()
        route = _route_label(request)
        response = self._refuse(request, settings)
        if response is None:
            response = await call_next(request)
        metrics.requests.inc(endpoint=route, status=str(response.status_code))
        metrics.latency.observe(time.monotonic() - started, endpoint=route)
        return response

    @staticmethod
    def _refuse(request: Request, settings: Settings) -> Response | None:
        if settings.api_key and request.url.path not in PUBLIC_PATHS:
            auth = request.headers.get("authorization", "")
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                token.strip().encode(), settings.api_key.encode()
            ):
                return error_response(
                    APIError(
                        401,
                        "missing or wrong API key: send Authorization: Bearer <key>",
                        code="invalid_api_key",
                    )
                )
        length = request.headers.get("content-length")
        # Refuse an oversized upload before reading it; without the header (or when it lies)
        # the body is counted as it arrives (api.py, intake.py).
        if length and length.isdigit() and int(length) > settings.max_upload_bytes + ENVELOPE_BYTES:
            return error_response(too_large(settings.max_upload_mb))
        return None


def _route_label(request: Request) -> str:
    """A bounded label: known endpoints by their template, anything else as 'other'."""
    path = request.url.path
    for prefix in ("/api/ps/", "/v1/models/"):
        if path.startswith(prefix):
            return prefix + "{model}"
    known = (
        "/v1/audio/transcriptions",
        "/v1/audio/translations",
        "/v1/audio/speech",
        "/v1/audio/voices",
        "/v1/audio/models",
        "/v1/models",
        "/api/ps",
        "/health",
        "/health/ready",
        "/metrics",
    )
    return path if path in known else "other"


def _grpc_server(settings: Settings, app: FastAPI, transcribe) -> object:
    # grpcio is imported only when gRPC serves.
    from .grpc_backend.server import GrpcServer, GrpcServices

    services = GrpcServices(
        transcriber=lambda _options: transcribe,
        sessions=app.state.sessions,
        limits=settings.stream,
        metrics=app.state.metrics,
        api_key=settings.api_key,
        beam_size=settings.beam_size,
        defaults=StreamOptions(language=settings.language),
        default_profile=settings.live.decode_profile,
    )
    host = settings.live.grpc_host or settings.host
    return GrpcServer(host, settings.live.grpc_port, services)


def create_app(
    settings: Settings,
    *,
    load_default: bool = True,
    engine: Transcriber | None = None,
    vram: VramGuard | None = None,
    flags: Mapping[str, object] | None = None,
) -> FastAPI:
    """Build the app. The default model loads in the background so /health answers at once.

    `flags` are the command line's settings (by key): on SIGHUP they still win over the model
    env file, as they did at start (model_reload.py). `vram` replaces the GPU memory guard
    the model manager builds itself on CUDA (vram/).
    With `settings.wyoming.enabled` the Wyoming server is built here and starts and stops
    with the app (its port is taken at start, or earlier by `app.state.wyoming.bind()`).
    """

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.swap.start()  # the preload first, then a swap per SIGHUP (model_swap.py)
        app.state.models.start_sweeper()
        if app.state.hass is not None:
            app.state.hass.start()  # a background thread: never on a request's path
        if app.state.tts is not None:  # voices load on a synthesis worker, in the background
            voices = asyncio.ensure_future(app.state.tts.synthesizer.load())
        if app.state.capture is not None:
            app.state.capture.start()
        # The Wyoming server shares this loop, engine, models and metrics.
        if app.state.wyoming is not None:
            await app.state.wyoming.start()
        if app.state.grpc is not None:  # like Wyoming: this loop, engine, models and limits
            await app.state.grpc.start()
        try:
            yield
        finally:
            if app.state.grpc is not None:
                await app.state.grpc.stop()
            if app.state.capture is not None:
                app.state.capture.stop()
            if app.state.wyoming is not None:
                await app.state.wyoming.stop()
            if app.state.hass is not None:
                app.state.hass.stop()
            app.state.swap.stop()
            app.state.engine.close()
            app.state.models.close()
            if app.state.tts is not None:
                voices.cancel()
                app.state.tts.synthesizer.close()

    app = FastAPI(title="aistack-stt", version=__version__, lifespan=lifespan)
    metrics = Metrics()
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.models = ModelManager(settings, metrics, vram=vram)
    # Lanes, batching and the bounded queue (scheduling/), tuned by settings.scheduler;
    # in front of it the speech gate, which answers requests without speech (speech_gate.py).
    inner = engine or Scheduler(app.state.models, settings.scheduler, metrics)
    # Outermost, the household's words (vocabulary.py): every protocol's requests get them.
    count = model_token_counter(lambda: app.state.models.resolve(app.state.models.default_id).path)
    app.state.hass = HassNames.from_settings(settings.vocabulary, count)
    vocabulary = Vocabulary(
        parse_terms(settings.vocabulary.vocabulary),
        names=app.state.hass.names if app.state.hass is not None else None,
        count=count,
    )
    app.state.engine = VocabularyPrompt(SpeechGate(inner, app.state.models), vocabulary)
    app.state.readiness = Readiness(state="loading" if load_default else "ok")
    app.state.swap = ModelSwap(
        app.state.models,
        lambda running: read_plan(settings.model_env_file, running, flags),
        preload=(lambda: _load_default(app)) if load_default else (lambda: None),
        on_loaded=lambda: app.state.readiness.set("ok"),
    )
    app.state.too_large = lambda: too_large(settings.max_upload_mb)
    app.state.decodes = DecodeSlots(settings.max_decodes, settings.scheduler.max_queue)
    install_handlers(app)
    api_schema.install(app)  # /openapi.json: the multipart bodies and the error responses
    app.add_middleware(_Guard)
    app.include_router(health_router)
    app.include_router(status_router)
    app.include_router(api_router)
    # Speech synthesis (tts/), when a voice is configured; a wrong voice is a ConfigError here.
    app.state.tts = tts.build(settings.tts, settings.model_dir)
    app.include_router(tts.router)
    # Every live decode goes through the decode profiles, interim model and language
    # allow-list of settings.live (live/decoding.py), whatever the protocol.
    live_settings = settings.live
    capture = None
    if live_settings.capture_dir:  # opt-in (live/capture.py)
        capture = CaptureStore(
            Path(live_settings.capture_dir),
            live_settings.capture_max_mb,
            live_settings.capture_max_files,
            live_settings.capture_max_age_h,
        )
    app.state.capture = capture
    decoding = LiveDecoding(
        live_settings.decode_profile,
        lambda: app.state.models.interim_id,  # the model manager's: a swap may change it
        live_settings.language_list(),
        capture,
    )
    app.state.decoding = decoding
    live_transcribe = decoding.wrap(app.state.engine.transcribe)
    live = create_live_router(settings.stream, transcriber=lambda _websocket: live_transcribe)
    app.state.sessions = live.sessions
    app.include_router(live.router)
    app.state.grpc = (
        _grpc_server(settings, app, live_transcribe) if settings.live.grpc_port else None
    )
    # The Wyoming server (settings.wyoming): what a connection may use of the app. It talks
    # to the same engine through the `Transcriber` protocol, like every other protocol.
    app.state.wyoming = None
    if settings.wyoming.enabled:
        services = Services(
            engine=app.state.engine,
            models=app.state.models,
            metrics=metrics,
            beam_size=settings.beam_size,
            language=settings.language,
            tts=app.state.tts,
        )
        app.state.wyoming = WyomingServer(settings.wyoming, services)
    return app
