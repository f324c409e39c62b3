"""Liveness, readiness and metrics: what systemd, Ansible and Prometheus poll.

`GET /health` always answers 200 while the process runs (liveness) and says in `status`
whether the default model is loaded (`ok`), still loading (`loading`) or failed (`error`,
with the reason in `error`). During a model swap (SIGHUP, model_swap.py) it stays `ok` with
the old `model` and names the one loading in `next_model`; `swap` is the last swap's record
(`state` loading, done or failed, and why in its `error`). `GET /health/ready` answers 200
only when `status` is `ok`, 503 otherwise, for checks that only look at the status code.
Field names are a contract with the stt_server role: keep them stable.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from . import __version__
from .api_schema import errors
from .engine import Transcriber
from .live import SessionCounter
from .metrics import CONTENT_TYPE
from .status import live_metrics

router = APIRouter()


def _health(request: Request) -> dict:
    state = request.app.state
    models = state.models
    return {
        "status": state.readiness.state,
        "ready": state.readiness.state == "ok",
        "error": state.readiness.error,
        "version": __version__,
        "model": models.default_id,
        "models_loaded": [m.id for m in models.loaded()],
        "device": models.device,
        "compute_type": models.compute_type,
        **state.swap.health(),  # next_model, swap (model_swap.py)
        **_load(state),
        **_vram(models),
    }


def _vram(models) -> dict:
    """On a GPU with the guard on: the MiB each tenant (aistack-stt, Ollama, other) holds."""
    return {"vram": models.vram.health(models)} if models.vram is not None else {}


def _load(state) -> dict:
    """Queue depth and batch sizes from the engine, live sessions and decodes in flight, and
    connections per client address."""
    engine: Transcriber = state.engine
    sessions: SessionCounter = state.sessions
    decodes = state.decodes
    load = {
        "scheduler": engine.health(),
        "streams": {"active": sessions.active, "limit": sessions.limit},
        # Uploads being decoded now, and waiting for a decode slot (intake.DecodeSlots).
        "decodes": {"running": decodes.running, "waiting": decodes.waiting, "limit": decodes.limit},
    }
    counter = getattr(state, "client_connections", None)  # set by `serve` (client_limits.py)
    if counter is not None:
        load["clients"] = counter.health()
    return load


@router.get("/health")
def health(request: Request) -> dict:
    return _health(request)


@router.get(
    "/health/ready",
    responses={503: {"description": "Not ready: the same body, `status` says why"}},
)
def ready(request: Request) -> JSONResponse:
    body = _health(request)
    return JSONResponse(body, status_code=200 if body["ready"] else 503)


@router.get("/metrics", response_class=PlainTextResponse, responses=errors(401, 503))
def metrics(request: Request) -> Response:
    state = request.app.state
    engine: Transcriber = state.engine
    body = state.metrics.render() + engine.render_metrics() + live_metrics(state)
    if state.models.vram is not None:
        body += state.models.vram.render_metrics(state.models)
    return Response(body, media_type=CONTENT_TYPE)
