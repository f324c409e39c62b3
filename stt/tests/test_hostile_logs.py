"""Secrets never reach the log: the real server's output, as the journal would keep it.

A client that puts the API key in the WebSocket URL (`?api_key=`), right or wrong, is logged
with `api_key=***`; the header and the browser subprotocol carry the key without it ever
appearing in a URL.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import websockets
from hostile_server import start_process
from stt_testkit import Speech

KEY = "sk-aistack-9f3c1e77d2"
WRONG = "guessed-key-41a0"


async def _first_event(url: str, start: bool = True, **kw) -> tuple[dict, str | None]:
    """The first event of a session; the aistack protocol starts when it is asked to."""
    async with websockets.connect(url, open_timeout=30, **kw) as ws:
        if start and "/v1/audio/stream" in url:
            await ws.send(json.dumps({"type": "start"}))
        event = json.loads(await asyncio.wait_for(ws.recv(), 30))
        return event, ws.subprotocol


def test_api_keys_in_websocket_urls_are_redacted_in_the_log(
    models_dir: Path, speech: Speech, tmp_path: Path
) -> None:
    server = start_process(models_dir, tmp_path / "server.log", AISTACK_STT_API_KEY=KEY)
    ws = server.url.replace("http://", "ws://")
    try:

        async def scenario() -> dict[str, tuple[dict, str | None]]:
            return {
                "query": await _first_event(f"{ws}/v1/audio/stream?api_key={KEY}"),
                "wrong": await _first_event(f"{ws}/v1/audio/stream?api_key={WRONG}&x=1", False),
                "header": await _first_event(
                    f"{ws}/v1/audio/stream", additional_headers={"Authorization": f"Bearer {KEY}"}
                ),
                "browser": await _first_event(
                    f"{ws}/v1/audio/stream",
                    subprotocols=["aistack-stt", f"openai-insecure-api-key.{KEY}"],
                ),
                "realtime": await _first_event(
                    f"{ws}/v1/realtime?intent=transcription&api_key={KEY}",
                    subprotocols=["realtime", f"openai-insecure-api-key.{KEY}"],
                ),
            }

        events = asyncio.run(scenario())
        # An HTTP client that tries the query string too: refused, and logged without it.
        refused = httpx.get(f"{server.url}/v1/models?api_key={KEY}", timeout=30)
        served = httpx.get(
            f"{server.url}/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=30
        )
    finally:
        assert server.stop() in (0, -15)  # uvicorn ends by its signal once it shut down
    assert events["query"][0]["type"] == "session.started"
    assert events["wrong"][0]["code"] == "invalid_api_key"
    assert "Authorization: Bearer" in events["wrong"][0]["message"]
    assert events["header"][0]["type"] == "session.started"
    assert events["browser"] == (events["browser"][0], "aistack-stt")
    assert events["browser"][0]["type"] == "session.started"
    assert events["realtime"][1] == "realtime"
    assert events["realtime"][0]["type"] == "transcription_session.created"
    assert refused.status_code == 401 and served.status_code == 200
    log = server.log_text()
    assert KEY not in log and WRONG not in log, log
    # The requests are in the log, with the key blanked.
    assert '"WebSocket /v1/audio/stream?api_key=***" [accepted]' in log, log
    assert "/v1/audio/stream?api_key=***&x=1" in log, log
    assert "/v1/realtime?intent=transcription&api_key=***" in log, log
    assert '"GET /v1/models?api_key=*** HTTP/1.1" 401' in log, log
