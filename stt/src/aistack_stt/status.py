"""`GET /status`: what the server is doing now, for an operator (API key like every endpoint
but /health): queues, workers, live sessions by protocol, models and the backpressure level.
`live_metrics` adds the matching Prometheus gauges to /metrics.
"""

from __future__ import annotations

from fastapi import APIRouter, Request

from .api_schema import errors

router = APIRouter()
LEVELS = {"normal": 0, "high": 1, "critical": 2}


def _backpressure(state) -> str:
    level = getattr(state.engine, "backpressure", None)
    return level() if level is not None else "normal"


def snapshot(state) -> dict:
    scheduler = state.engine.health()
    sessions = state.sessions
    live = state.settings.live
    wyoming = state.wyoming
    grpc = getattr(state, "grpc", None)
    return {
        "backpressure": _backpressure(state),
        "queues": {
            "admitted": scheduler.get("admitted"),
            "running": scheduler.get("running"),
            "waiting": scheduler.get("waiting"),
            "max_queue": scheduler.get("max_queue"),
            "lanes": scheduler.get("lanes", {}),
        },
        "workers": {"hot": 1, "bulk": scheduler.get("bulk_workers")},
        "sessions": {
            "live": sessions.active,
            "limit": sessions.limit,
            "per_client_limit": sessions.per_client,
            "wyoming_connections": wyoming.connections if wyoming is not None else None,
            "grpc_port": grpc.port if grpc is not None else None,
        },
        "models": {
            "default": state.models.default_id,
            "interim": state.models.interim_id,
            "decode_profile": live.decode_profile,
            "languages": list(live.language_list()),
            "loaded": [m.id for m in state.models.loaded()],
        },
    }


@router.get("/status", responses=errors(401))
def status(request: Request) -> dict:
    return snapshot(request.app.state)


def live_metrics(state) -> str:
    """Gauges for live connections and the backpressure level (0 normal, 1 high, 2 critical)."""
    wyoming = state.wyoming.connections if state.wyoming is not None else 0
    p = "aistack_stt_"
    lines = [
        f"# HELP {p}live_sessions Live sessions open now (WebSocket, realtime, /ws, gRPC).",
        f"# TYPE {p}live_sessions gauge",
        f"{p}live_sessions {state.sessions.active}",
        f"# HELP {p}wyoming_connections Wyoming connections open now.",
        f"# TYPE {p}wyoming_connections gauge",
        f"{p}wyoming_connections {wyoming}",
        f"# HELP {p}backpressure_level Scheduler backpressure: 0 normal, 1 high, 2 critical.",
        f"# TYPE {p}backpressure_level gauge",
        f"{p}backpressure_level {LEVELS[_backpressure(state)]}",
    ]
    return "\n".join(lines) + "\n"
