"""two_stt's `/ws` protocol with the `websockets` client: a fast interim model (tiny.en) and an
accurate final model (base), real speech at real-time pace in 40 ms frames."""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import websockets
from aistack_stt.config import LiveSettings, Settings
from faster_whisper import decode_audio
from stt_live import start, stop

FRAME = 1280  # 40 ms of 16 kHz PCM16
WORDS = {"kitchen", "lights", "timer", "minutes"}


@pytest.fixture(scope="module")
def dual(models_dir: Path):
    settings = Settings(model="base", model_dir=models_dir, device="cpu", cpu_threads=2)
    server = start(
        replace(settings, live=LiveSettings(interim_model="tiny.en")),
        env={"AISTACK_STT_STREAM_IDLE_TIMEOUT_S": "5"},
    )
    yield server
    stop(server)


def _pcm(wav: Path) -> bytes:
    pause = np.zeros(16000, dtype=np.float32)
    audio = np.concatenate([pause[:8000], decode_audio(str(wav), sampling_rate=16000), pause])
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


async def _talk(url: str, audio: bytes, first: list[dict]) -> list[dict]:
    messages: list[dict] = []
    async with websockets.connect(url, max_size=None, open_timeout=30) as ws:
        for control in first:
            await ws.send(json.dumps(control))

        async def read() -> None:
            async for message in ws:
                messages.append(json.loads(message))

        reader = asyncio.create_task(read())
        began = time.monotonic()
        for n, i in enumerate(range(0, len(audio), FRAME)):
            await ws.send(audio[i : i + FRAME])
            await asyncio.sleep(max(0.0, began + (n + 1) * 0.04 - time.monotonic()))
        await ws.send(json.dumps({"event": "stop"}))
        await asyncio.wait_for(reader, timeout=300)
        messages.append({"type": "_closed", "code": ws.close_code})
    return messages


def _url(server) -> str:
    return server.url.replace("http://", "ws://") + "/ws"


def test_interims_from_the_fast_model_then_the_final_from_the_accurate_one(dual, speech):
    controls = [{"event": "start", "language": "en"}, {"event": "set", "interimRate": 4}]
    messages = asyncio.run(_talk(_url(dual), _pcm(speech.command_wav) * 2, controls))
    kinds = [m["type"] for m in messages]
    finals = [m for m in messages if m["type"] == "final"]
    assert len(finals) == 2, messages
    assert kinds.index("interim") < kinds.index("final")
    for final in finals:
        assert set(re.findall(r"[a-z]+", final["text"].lower())) >= WORDS, final
        assert final["language"] == "en" and final["conn"] == messages[0]["conn"]
        assert final["segments"] and final["t0"] < final["t1"]
    interims = [m for m in messages if m["type"] == "interim"]
    for interim in interims:
        assert 0 <= interim["stable_chars"] <= len(interim["text"])
        assert interim["t0"] <= interim["t1"]
    assert messages[-1] == {"type": "_closed", "code": 1000}
    # Both models served the session: tiny.en for interims, base for finals.
    loaded = dual.client().get("/health").json()["models_loaded"]
    assert {"tiny.en", "base"} <= set(loaded), loaded


@pytest.mark.parametrize(
    ("control", "code"),
    [
        ({"event": "set", "interimRate": 50}, "invalid_option"),
        ({"event": "dance"}, "invalid_message"),
        ({"event": "start", "language": "english please"}, "invalid_option"),
    ],
)
def test_bad_control_messages_are_refused_with_a_reason(dual, control, code):
    async def run() -> tuple[dict, int]:
        async with websockets.connect(_url(dual), open_timeout=30) as ws:
            await ws.send(json.dumps(control))
            error = json.loads(await ws.recv())
            with pytest.raises(websockets.ConnectionClosed):
                await ws.recv()
            return error, ws.close_code

    error, close = asyncio.run(run())
    assert error["type"] == "error" and error["code"] == code, error
    assert close == 1008


def test_status_and_metrics_show_queues_sessions_models_and_backpressure(dual):
    with dual.client() as client:
        status = client.get("/status").json()
        metrics = client.get("/metrics").text
    assert status["backpressure"] == "normal"
    assert status["models"]["default"] == "base" and status["models"]["interim"] == "tiny.en"
    assert status["models"]["decode_profile"] == "accurate"
    assert status["sessions"]["live"] == 0 and status["sessions"]["limit"] == 16
    assert status["workers"]["hot"] == 1 and status["workers"]["bulk"] >= 1
    assert set(status["queues"]["lanes"]) == {"hot", "bulk"}
    assert "\naistack_stt_live_sessions 0\n" in metrics
    assert "\naistack_stt_backpressure_level 0\n" in metrics
