"""What a Wyoming client (Home Assistant's protocol, the real `wyoming` package) sees.

The server runs in this process on a free port beside the HTTP API, with tiny.en as default
model and base next to it in the model directory.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from aistack_stt import __version__
from aistack_stt.cli import check
from aistack_stt.config import Settings, load_settings
from aistack_stt.wyoming import WyomingSettings
from stt_testkit import Speech, start_server, stop_server
from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, Info

from tests.helpers.stt_server import free_port

RATE_16K = 16000
LIMITS = WyomingSettings(
    host="127.0.0.1",
    port=0,
    max_connections=3,
    max_audio_s=20,
    max_event_bytes=64 * 1024,
    idle_timeout_s=20,
)


class WyomingLive:
    def __init__(self, app, server: uvicorn.Server, thread: threading.Thread, url: str) -> None:
        self.app, self.server, self.thread, self.url = app, server, thread, url

    @property
    def port(self) -> int:
        return self.app.state.wyoming.port

    def client(self) -> AsyncTcpClient:
        return AsyncTcpClient("127.0.0.1", self.port)

    def wait_until_idle(self, timeout: float = 120) -> None:
        """Until the server has noticed every closed connection (a behaviour, not a race)."""
        deadline = time.monotonic() + timeout
        while self.app.state.wyoming.connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert self.app.state.wyoming.connections == 0


@pytest.fixture(scope="module")
def wyoming_server(models_dir: Path) -> Iterator[WyomingLive]:
    settings = Settings(model="tiny.en", model_dir=models_dir, device="cpu", cpu_threads=2)
    live = start_server(settings, wyoming=LIMITS)
    yield WyomingLive(live.app, live.server, live.thread, live.url)
    stop_server(live)


def _pcm(wav_path: Path) -> tuple[bytes, int, int, int]:
    with wave.open(str(wav_path)) as wav:
        frames = wav.readframes(wav.getnframes())
        return frames, wav.getframerate(), wav.getsampwidth(), wav.getnchannels()


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _heard_command(text: str) -> bool:
    return {"kitchen", "lights", "timer"} <= _words(text)


async def _send_audio(
    client: AsyncTcpClient, pcm: bytes, rate: int, width: int, channels: int, ms: int = 20
) -> None:
    """Like a satellite: audio-start, then chunks of `ms` milliseconds, then audio-stop."""
    await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
    step = rate * width * channels * ms // 1000
    for offset in range(0, len(pcm), step):
        chunk = AudioChunk(
            rate=rate, width=width, channels=channels, audio=pcm[offset : offset + step]
        )
        await client.write_event(chunk.event())
    await client.write_event(AudioStop().event())


async def _until(client: AsyncTcpClient, *types: str, timeout: float = 120) -> list[Event]:
    """Every event up to and including the first of `types`."""
    events = []
    while True:
        event = await asyncio.wait_for(client.read_event(), timeout)
        assert event is not None, f"connection closed; got {[e.type for e in events]}"
        events.append(event)
        if event.type in types:
            return events


async def _transcribe(
    live: WyomingLive, wav: Path, name: str | None = None, language: str | None = None
) -> list[Event]:
    pcm, rate, width, channels = _pcm(wav)
    async with live.client() as client:
        await client.write_event(Transcribe(name=name, language=language).event())
        await _send_audio(client, pcm, rate, width, channels)
        return await _until(client, "transcript-stop", "error")


def _transcript(events: list[Event]) -> Transcript:
    found = [Transcript.from_event(e) for e in events if Transcript.is_type(e.type)]
    assert len(found) == 1, [e.type for e in events]
    return found[0]


def test_describe_lists_the_served_models_and_their_languages(wyoming_server: WyomingLive) -> None:
    async def run() -> Info:
        async with wyoming_server.client() as client:
            await client.write_event(Describe().event())
            events = await _until(client, "info")
            return Info.from_event(events[-1])

    info = asyncio.run(run())
    assert len(info.asr) == 1
    program = info.asr[0]
    assert program.name == "aistack-stt" and program.installed
    assert program.version == __version__
    assert program.attribution.name and program.attribution.url
    assert program.supports_transcript_streaming
    models = {m.name: m for m in program.models}
    assert list(models)[0] == "tiny.en"  # the default first
    assert {"tiny.en", "base"} <= set(models)
    assert models["tiny.en"].languages == ["en"]
    assert {"en", "fr", "de"} <= set(models["base"].languages)
    assert all(m.installed and m.attribution.url for m in models.values())
    # Hub aliases that would need a download are not offered to an unauthenticated client.
    assert "large-v3" not in models


def test_spoken_command_in_20_ms_chunks_comes_back_as_the_words(
    wyoming_server: WyomingLive, speech: Speech
) -> None:
    """espeak-ng's 22.05 kHz mono WAV as a satellite would send it, without a model name."""
    events = asyncio.run(_transcribe(wyoming_server, speech.command_wav))
    transcript = _transcript(events)
    assert _heard_command(transcript.text), transcript.text
    assert transcript.language == "en"
    metrics = httpx.get(wyoming_server.url + "/metrics").text
    assert 'aistack_stt_requests_total{endpoint="wyoming/transcribe",status="200"}' in metrics


def test_stereo_48k_audio_is_mixed_down_and_resampled(
    wyoming_server: WyomingLive, speech: Speech
) -> None:
    wav, _ = speech.variants["wav-stereo-48k"]
    transcript = _transcript(asyncio.run(_transcribe(wyoming_server, wav, name="tiny.en")))
    assert _heard_command(transcript.text), transcript.text


def test_streaming_events_deliver_the_text_in_chunks_before_the_transcript(
    wyoming_server: WyomingLive, speech: Speech
) -> None:
    events = asyncio.run(_transcribe(wyoming_server, speech.command_wav, language="en-US"))
    types = [e.type for e in events]
    assert types[0] == TranscriptStart().event().type
    assert types[-2:] == ["transcript", TranscriptStop().event().type]
    chunks = [TranscriptChunk.from_event(e).text for e in events if TranscriptChunk.is_type(e.type)]
    assert chunks and types[1 : 1 + len(chunks)] == ["transcript-chunk"] * len(chunks)
    assert "".join(chunks).strip() == _transcript(events).text
    assert TranscriptStart.from_event(events[0]).language == "en"


def test_a_named_multilingual_model_and_language_are_used(
    wyoming_server: WyomingLive, speech: Speech
) -> None:
    transcript = _transcript(
        asyncio.run(_transcribe(wyoming_server, speech.french_wav, name="base", language="fr"))
    )
    assert transcript.language == "fr"
    assert {"croissant"} <= _words(transcript.text), transcript.text


def test_refused_requests_answer_an_error_and_keep_the_connection(
    wyoming_server: WyomingLive, speech: Speech
) -> None:
    pcm, rate, width, channels = _pcm(speech.command_wav)

    async def run() -> tuple[list[Error], Info]:
        errors = []
        async with wyoming_server.client() as client:
            for request in (
                Transcribe(name="/etc"),  # not a served model: no directory of the client's choice
                Transcribe(name="large-v3"),  # would need a download
                Transcribe(name="tiny.en", language="de"),  # English-only model
                Transcribe(language="klingon"),
            ):
                await client.write_event(request.event())
                await _send_audio(client, pcm[: rate * width], rate, width, channels)
                errors.append(Error.from_event((await _until(client, "error", "transcript"))[-1]))
            await client.write_event(Describe().event())
            return errors, Info.from_event((await _until(client, "info"))[-1])

    errors, info = asyncio.run(run())
    assert "not served" in errors[0].text and "tiny.en" in errors[0].text
    assert "not served" in errors[1].text
    assert "English-only" in errors[2].text
    assert "klingon" in errors[3].text
    assert info.asr[0].name == "aistack-stt"


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"AISTACK_STT_WYOMING_ENABLED": "maybe"}, "not a boolean"),
        ({"AISTACK_STT_WYOMING_PORT": "ten"}, "AISTACK_STT_WYOMING_PORT='ten' is not a number"),
        ({"AISTACK_STT_WYOMING_PORT": "70000"}, "out of range"),
        ({"AISTACK_STT_WYOMING_MAX_CONNECTIONS": "0"}, "max_connections 0"),
        ({"AISTACK_STT_WYOMING_MAX_AUDIO_S": "0.5"}, "max_audio_s 0.5"),
        ({"AISTACK_STT_WYOMING_ALLOW": "192.168.1.0/24,lan"}, "'lan' is not a network"),
    ],
)
def test_check_names_a_wrong_wyoming_setting(environ: dict, message: str) -> None:
    problems = check(environ)
    assert len(problems) == 1 and message in problems[0], problems


def test_wyoming_settings_are_known_and_read_from_the_environment() -> None:
    environ = {
        "AISTACK_STT_WYOMING_ENABLED": "false",
        "AISTACK_STT_WYOMING_PORT": "10301",
        "AISTACK_STT_WYOMING_ALLOW": "",
    }
    assert check(environ) == []
    settings = load_settings(environ=environ).wyoming
    assert (settings.enabled, settings.port, settings.networks()) == (False, 10301, [])
    flags = load_settings({"wyoming_port": "10302", "wyoming_enabled": "yes"}, environ=environ)
    assert (flags.wyoming.enabled, flags.wyoming.port) == (True, 10302)
    assert WyomingSettings().port == 10300 and WyomingSettings().enabled


def test_serve_with_the_wyoming_port_taken_says_so_in_one_line(models_dir: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = dict(
            os.environ,
            AISTACK_STT_HOST="127.0.0.1",
            AISTACK_STT_PORT=str(free_port()),
            AISTACK_STT_MODEL="tiny.en",
            AISTACK_STT_MODEL_DIR=str(models_dir),
            AISTACK_STT_WYOMING_ENABLED="true",
            AISTACK_STT_WYOMING_HOST="127.0.0.1",
            AISTACK_STT_WYOMING_PORT=str(port),
        )
        run = subprocess.run(
            [sys.executable, "-m", "aistack_stt.cli", "serve"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert run.returncode == 2
    assert run.stderr.startswith(
        f"aistack-stt: error: cannot listen for Wyoming on 127.0.0.1:{port}"
    )
    assert "AISTACK_STT_WYOMING_PORT" in run.stderr and "Traceback" not in run.stderr


def test_a_client_that_leaves_after_its_transcript_is_a_normal_end(
    wyoming_server: WyomingLive, speech: Speech, caplog: pytest.LogCaptureFixture
) -> None:
    """Clients without streaming stop at `transcript`; that is no disconnect to report."""
    pcm, rate, width, channels = _pcm(speech.command_wav)
    metrics = wyoming_server.app.state.metrics

    def counted(status: str) -> float:
        return metrics.requests.value(endpoint="wyoming/transcribe", status=status)

    before = counted("200"), counted("499")

    async def run() -> str:
        async with wyoming_server.client() as client:
            await client.write_event(Transcribe(language="en").event())
            await _send_audio(client, pcm, rate, width, channels)
            return Transcript.from_event((await _until(client, "transcript"))[-1]).text

    with caplog.at_level(logging.INFO, logger="aistack_stt.wyoming"):
        text = asyncio.run(run())
        wyoming_server.wait_until_idle()
    assert _heard_command(text), text
    assert (counted("200"), counted("499")) == (before[0] + 1, before[1])
    assert not [r for r in caplog.records if "went away" in r.getMessage()]


def test_audio_without_any_chunk_gets_an_empty_transcript(wyoming_server: WyomingLive) -> None:
    async def run() -> list[Event]:
        async with wyoming_server.client() as client:
            await client.write_event(Transcribe().event())
            await _send_audio(client, b"", RATE_16K, 2, 1)
            return await _until(client, "transcript-stop", "error")

    events = asyncio.run(run())
    assert [e.type for e in events] == ["transcript-start", "transcript", "transcript-stop"]
    assert _transcript(events).text == ""
