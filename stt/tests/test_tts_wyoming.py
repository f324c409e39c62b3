"""Text-to-speech over Wyoming as Home Assistant sees it, with the real `wyoming` client: one
port, `describe` lists the ASR and the TTS program, `synthesize` answers with audio."""

from __future__ import annotations

import asyncio
import io
import threading
import time
import wave
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import uvicorn
from aistack_stt.app import create_app
from aistack_stt.config import Settings, TtsSettings, WyomingSettings
from tts_testkit import SENTENCES, VOICE_NAME, voice_dir, word_error_rate, words
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.info import Describe, Info
from wyoming.ping import Ping, Pong
from wyoming.tts import Synthesize, SynthesizeVoice

from tests.helpers.stt_server import free_port


class Live:
    def __init__(self, app, url: str) -> None:
        self.app, self.url = app, url

    def client(self) -> AsyncTcpClient:
        return AsyncTcpClient("127.0.0.1", self.app.state.wyoming.port)


@pytest.fixture(scope="module")
def live(models_dir: Path) -> Iterator[Live]:
    settings = Settings(
        model="tiny.en",
        model_dir=models_dir,
        device="cpu",
        cpu_threads=2,
        wyoming=WyomingSettings(host="127.0.0.1", port=0, idle_timeout_s=30),
        tts=TtsSettings(voice=str(voice_dir() / f"{VOICE_NAME}.onnx"), max_input_chars=500),
    )
    app = create_app(replace(settings))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=2).json()["status"] == "ok":
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    else:
        pytest.fail("aistack-stt did not become ready within 120 s")
    assert app.state.tts.synthesizer.wait_loaded(60), "the voice did not load in 60 s"
    yield Live(app, url)
    server.should_exit = True
    thread.join(timeout=30)


async def _synthesize(client: AsyncTcpClient, text: str, voice: str | None = None) -> list:
    """The events answering one synthesize, up to audio-stop or an error."""
    await client.write_event(Synthesize(text, SynthesizeVoice(voice) if voice else None).event())
    events = []
    while True:
        event = await asyncio.wait_for(client.read_event(), 120)
        assert event is not None, f"connection closed after {[e.type for e in events]}"
        events.append(event)
        if AudioStop.is_type(event.type) or Error.is_type(event.type):
            return events


def _wav(events: list) -> bytes:
    start = AudioStart.from_event(events[0])
    chunks = [AudioChunk.from_event(e) for e in events[1:-1]]
    assert all(c.rate == start.rate and c.width == 2 and c.channels == 1 for c in chunks)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(start.rate)
        wav.writeframes(b"".join(c.audio for c in chunks))
    return buffer.getvalue()


def _hear(live: Live, wav: bytes) -> str:
    files = {"file": ("speech.wav", wav, "audio/wav")}
    response = httpx.post(live.url + "/v1/audio/transcriptions", files=files, timeout=120)
    assert response.status_code == 200, response.text
    return response.json()["text"]


def test_describe_lists_the_voice_beside_the_transcriber(live: Live) -> None:
    async def run() -> Info:
        async with live.client() as client:
            await client.write_event(Describe().event())
            return Info.from_event(await asyncio.wait_for(client.read_event(), 30))

    info = asyncio.run(run())
    assert info.asr and info.asr[0].models[0].name == "tiny.en"
    (program,) = info.tts
    assert program.installed
    assert [v.name for v in program.voices] == [VOICE_NAME]
    assert program.voices[0].languages == ["en_US"]


def test_twenty_sentences_spoken_over_wyoming_are_heard_back(live: Live) -> None:
    async def run() -> list[bytes]:
        async with live.client() as client:  # one connection, as Home Assistant keeps it
            return [_wav(await _synthesize(client, s, VOICE_NAME)) for s in SENTENCES]

    audio = asyncio.run(run())
    pairs = [(s, _hear(live, wav)) for s, wav in zip(SENTENCES, audio, strict=True)]
    wer = word_error_rate(pairs)
    assert wer <= 0.1, f"WER {wer:.3f}: {pairs}"


def test_a_long_text_comes_as_several_chunks_in_order(live: Live) -> None:
    text = " ".join(SENTENCES[:4])

    async def run() -> list:
        async with live.client() as client:
            return await _synthesize(client, text)  # no voice named: the default

    events = asyncio.run(run())
    assert AudioStart.is_type(events[0].type) and AudioStop.is_type(events[-1].type)
    assert len(events) - 2 >= 4  # at least one chunk per sentence
    heard = set(words(_hear(live, _wav(events))))
    assert {"kitchen", "garage", "weather", "meeting"} <= heard


@pytest.mark.parametrize(
    ("text", "voice", "needle"),
    [
        ("", None, "text is missing or empty"),
        ("Hello.", "de_DE-thorsten-high", f"use one of {VOICE_NAME}"),
        ("word " * 200, None, "the limit is 500"),
    ],
)
def test_a_refused_synthesis_is_an_error_event_and_the_connection_stays(
    live: Live, text: str, voice: str | None, needle: str
) -> None:
    async def run() -> tuple[list, object, list]:
        async with live.client() as client:
            refused = await _synthesize(client, text, voice)
            await client.write_event(Ping(text="still there?").event())
            pong = await asyncio.wait_for(client.read_event(), 30)
            spoken = await _synthesize(client, "The front door is locked.")
            return refused, pong, spoken

    refused, pong, spoken = asyncio.run(run())
    assert [e.type for e in refused] == ["error"]
    assert needle in Error.from_event(refused[0]).text
    assert Pong.is_type(pong.type)
    assert {"front", "door", "locked"} <= set(words(_hear(live, _wav(spoken))))
