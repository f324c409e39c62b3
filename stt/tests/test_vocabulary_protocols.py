"""Made-up household names, spoken by espeak-ng, heard by tiny.en on every protocol: counted
right without the names, and with them given server-wide, per request and from Home
Assistant (a test double of its WebSocket API). With the names, more are right."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn
import websockets
from aistack_stt.app import create_app
from aistack_stt.config import Settings, VocabularySettings
from aistack_stt.wyoming import WyomingSettings
from hass_test_double import HassTestDouble, Home
from stt_testkit import _espeak, _pcm16k
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient

from tests.helpers.stt_server import free_port

# Names no model has heard; without them tiny.en hears "Wimbledon eager", "fan in more
# coverage", "brick selfie lamp".
COMMANDS = {
    "Quimbleton heater": "Set the Quimbleton heater to twenty degrees.",
    "Fennimore cottage": "Lock the doors at Fennimore cottage.",
    "Brixelby lamp": "Turn off the Brixelby lamp.",
}
NAMES = ", ".join(COMMANDS)
TOKEN = "test-double-token-0a9d"
SILENCE = b"\0\0" * 16000  # 1 s after each command: the live sessions' VAD ends it


@dataclass
class Running:
    app: object
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    @property
    def wyoming_port(self) -> int:
        return self.app.state.wyoming.port


def _start(settings: Settings) -> Running:
    wyoming = WyomingSettings(host="127.0.0.1", port=0)
    app = create_app(replace(settings, wyoming=wyoming))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    live = Running(app, f"http://127.0.0.1:{port}", server, thread)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(live.url + "/health", timeout=2).json()["status"] == "ok":
                return live
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail("aistack-stt did not become ready within 120 s")


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("names")
    out = {}
    for n, (name, text) in enumerate(COMMANDS.items()):
        wav = _espeak(text, "en-us", d / f"{n}.wav")
        out[name] = _pcm16k(wav, d / f"{n}.pcm").read_bytes()
    return out


@pytest.fixture(scope="module")
def hass() -> Iterator[HassTestDouble]:
    home = Home(
        exposed={"climate.q": "Quimbleton heater", "light.b": "Brixelby lamp"},
        areas=["Fennimore cottage"],
    )
    double = HassTestDouble(TOKEN, home)
    yield double
    double.close()


@pytest.fixture(scope="module")
def servers(models_dir: Path, hass, tmp_path_factory) -> Iterator[dict[str, Running]]:
    base = Settings(model="tiny.en", model_dir=models_dir, device="cpu", cpu_threads=2)
    token = tmp_path_factory.mktemp("secret") / "hass-token"
    token.write_text(TOKEN)
    token.chmod(0o600)
    running = {
        "plain": _start(base),
        "server-wide": _start(replace(base, vocabulary=VocabularySettings(vocabulary=NAMES))),
        "home assistant": _start(
            replace(
                base,
                vocabulary=VocabularySettings(
                    hass_url=hass.url, hass_token_file=str(token), hass_timeout_s=120
                ),
            )
        ),
    }
    assert running["home assistant"].app.state.hass.fetched.wait(60)
    yield running
    for live in running.values():
        live.server.should_exit = True
    for live in running.values():
        live.thread.join(timeout=30)


def _right(heard: dict[str, str]) -> int:
    """How many names came back spelled right (case and punctuation aside)."""

    def norm(text: str) -> str:
        return " ".join(re.findall(r"[a-z]+", text.lower()))

    return sum(norm(name) in norm(text) for name, text in heard.items())


def _http(live: Running, clips: dict[str, bytes], **fields: str) -> dict[str, str]:
    heard = {}
    with httpx.Client(base_url=live.url, timeout=120) as client:
        for name, pcm in clips.items():
            files = {"file": ("c.pcm", pcm, "audio/pcm")}
            r = client.post("/v1/audio/transcriptions", files=files, data=fields)
            assert r.status_code == 200, r.text
            heard[name] = r.json()["text"]
    return heard


async def _stream_one(url: str, pcm: bytes, start: dict) -> str:
    async with websockets.connect(url, max_size=None, open_timeout=30) as ws:
        await ws.send(json.dumps({"type": "start", **start}))
        for i in range(0, len(pcm + SILENCE), 3200):
            await ws.send((pcm + SILENCE)[i : i + 3200])
        await ws.send(json.dumps({"type": "stop"}))
        finals = []
        async for message in ws:
            event = json.loads(message)
            assert event["type"] != "error", event
            if event["type"] == "final":
                finals.append(event["text"])
        return " ".join(finals)


def _ws(live: Running, clips: dict[str, bytes], **start: str) -> dict[str, str]:
    url = live.url.replace("http://", "ws://") + "/v1/audio/stream"
    return {name: asyncio.run(_stream_one(url, pcm, start)) for name, pcm in clips.items()}


def _to_24k(pcm16k: bytes) -> bytes:
    samples = np.frombuffer(pcm16k, dtype="<i2").astype(np.float32)
    times = np.arange(0, len(samples), 2 / 3)
    return np.interp(times, np.arange(len(samples)), samples).astype("<i2").tobytes()


async def _realtime_one(url: str, pcm: bytes, transcription: dict) -> str:
    async with websockets.connect(url, open_timeout=30, subprotocols=["realtime"]) as ws:
        await ws.recv()
        session = {"input_audio_format": "pcm16", "input_audio_transcription": transcription}
        await ws.send(json.dumps({"type": "transcription_session.update", "session": session}))
        assert json.loads(await ws.recv())["type"] == "transcription_session.updated"
        audio = _to_24k(pcm + SILENCE)
        for i in range(0, len(audio), 4800):
            chunk = base64.b64encode(audio[i : i + 4800]).decode()
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": chunk}))
        while True:
            event = json.loads(await asyncio.wait_for(ws.recv(), 120))
            assert event["type"] != "error", event
            if event["type"] == "conversation.item.input_audio_transcription.completed":
                return event["transcript"]


def _realtime(live: Running, clips: dict[str, bytes], **transcription: str) -> dict[str, str]:
    url = live.url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
    return {n: asyncio.run(_realtime_one(url, pcm, transcription)) for n, pcm in clips.items()}


async def _wyoming_one(port: int, pcm: bytes) -> str:
    async with AsyncTcpClient("127.0.0.1", port) as client:
        await client.write_event(Transcribe(language="en").event())
        await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
        for i in range(0, len(pcm), 640):
            chunk = AudioChunk(rate=16000, width=2, channels=1, audio=pcm[i : i + 640])
            await client.write_event(chunk.event())
        await client.write_event(AudioStop().event())
        while True:
            event = await asyncio.wait_for(client.read_event(), 120)
            assert event is not None and event.type != "error", event
            if event.type == "transcript":
                return event.data["text"]


def _wyoming(live: Running, clips: dict[str, bytes]) -> dict[str, str]:
    return {n: asyncio.run(_wyoming_one(live.wyoming_port, pcm)) for n, pcm in clips.items()}


PROMPT, HOTWORDS = {"prompt": NAMES}, {"hotwords": NAMES}


@pytest.mark.parametrize(
    ("hear", "helped"),
    [
        pytest.param(
            _http,
            [("server-wide", {}), ("plain", PROMPT), ("plain", HOTWORDS), ("home assistant", {})],
            id="http",
        ),
        pytest.param(
            _ws, [("server-wide", {}), ("plain", PROMPT), ("plain", HOTWORDS)], id="live-websocket"
        ),
        pytest.param(_realtime, [("plain", PROMPT), ("server-wide", {})], id="openai-realtime"),
        pytest.param(_wyoming, [("server-wide", {}), ("home assistant", {})], id="wyoming"),
    ],
)
def test_each_protocol_hears_the_names_each_way_it_takes_them(servers, clips, hear, helped):
    """With the names (server-wide, per request as a prompt or hotwords, from Home Assistant:
    each protocol where it takes them), more of them are heard than without, two at least."""
    without = _right(hear(servers["plain"], clips))
    for server, fields in helped:
        heard = hear(servers[server], clips, **fields)
        assert _right(heard) > without and _right(heard) >= 2, heard


def test_a_hanging_home_assistant_does_not_hold_up_transcriptions(servers, clips, hass):
    """Home Assistant accepts the connection and says nothing: a fetch is stuck, and
    transcriptions go on with the names it gave before."""
    live = servers["home assistant"]
    hass.mode = "hang"
    fetch = threading.Thread(target=live.app.state.hass.refresh)
    fetch.start()
    try:
        assert hass.hanging.wait(30)
        heard = _http(live, clips)
        assert fetch.is_alive()  # the fetch is still waiting for Home Assistant...
        assert _right(heard) >= 2, heard  # ...and the names it gave before were used
    finally:
        hass.release.set()
        fetch.join(timeout=30)
        hass.mode = "ok"
