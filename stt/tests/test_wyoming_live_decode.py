"""Decode while the user speaks (wyoming/live_decode.py): the final decode starts when the
server's VAD hears the speech end, is the answer when only silence followed, and is dropped
when speech came back; with `endpoint_s` the server answers before `audio-stop`."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from aistack_stt.config import Settings
from aistack_stt.wyoming import WyomingSettings
from aistack_stt.wyoming.live_decode import EarlyDecode
from stt_testkit import LiveServer, _espeak, _pcm16k, start_server, stop_server
from wyoming.asr import Transcribe
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient

RATE = 16000
FIRST = "Turn on the kitchen lights."
SECOND = "Then open the garage door."


def _silence(seconds: float) -> bytes:
    return b"\0\0" * int(RATE * seconds)


@pytest.fixture(scope="module")
def said(tmp_path_factory) -> dict[str, bytes]:
    d = tmp_path_factory.mktemp("said")
    return {
        text: _pcm16k(_espeak(text, "en-us", d / f"{n}.wav"), d / f"{n}.pcm").read_bytes()
        for n, text in enumerate((FIRST, SECOND))
    }


def _floats(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


async def _feed(early: EarlyDecode, pcm: bytes) -> None:
    """In 20 ms chunks, as a satellite sends them."""
    audio = _floats(pcm)
    for i in range(0, audio.size, 320):
        await early.feed(audio[i : i + 320], lambda: audio)


def _run_early(pcm: bytes) -> tuple[list[int], int | None]:
    """The lengths of audio sent to decode, and the length behind the decode reused at
    audio-stop (None: decoded afresh)."""
    sent: list[int] = []

    async def result(size: int) -> int:
        return size

    def decode(audio: np.ndarray):
        sent.append(audio.size)  # counted when the decode is started, whenever it runs
        return result(audio.size)

    async def main() -> int | None:
        early = EarlyDecode(decode, silence_ms=300)
        await _feed(early, pcm)
        task = await early.reusable()
        return None if task is None else await task

    return sent, asyncio.run(main())


def test_the_decode_starts_at_the_speech_end_and_is_reused_after_silence(said):
    speech = said[FIRST]
    sent, reused = _run_early(speech + _silence(1.0))
    assert len(sent) == 1 and reused == sent[0]
    # What was decoded ends shortly after the speech, not at audio-stop.
    assert speech.__len__() // 2 - RATE // 2 < sent[0] < len(speech) // 2 + RATE * 0.7


def test_speech_after_the_pause_makes_the_early_decode_stale(said):
    first = len(said[FIRST]) // 2 + RATE * 0.8
    sent, reused = _run_early(said[FIRST] + _silence(0.8) + said[SECOND][: RATE * 2])
    assert len(sent) == 1 and sent[0] < first  # the first part was decoded early...
    assert reused is None  # ...but speech followed: that is not the answer
    sent, reused = _run_early(said[FIRST] + _silence(0.8) + said[SECOND] + _silence(1.0))
    assert len(sent) == 2 and reused == sent[1] > first  # the second end's decode covers both


def test_no_early_decode_without_silence_after_the_speech(said):
    sent, reused = _run_early(said[FIRST][: RATE * 2])  # cut mid-speech, as push-to-talk does
    assert reused is None


# -- end to end, with the real wyoming client ------------------------------------------------


def _start(models_dir: Path, wyoming: WyomingSettings) -> LiveServer:
    settings = Settings(model="tiny.en", model_dir=models_dir, device="cpu", cpu_threads=2)
    return start_server(settings, wyoming=wyoming)


@pytest.fixture(scope="module")
def servers(models_dir: Path) -> Iterator[dict[str, tuple[int, object]]]:
    """Wyoming ports and metrics: early decode (the default), and with endpointing."""
    running = {
        "early": _start(models_dir, WyomingSettings(host="127.0.0.1", port=0)),
        "endpoint": _start(models_dir, WyomingSettings(host="127.0.0.1", port=0, endpoint_s=0.8)),
    }
    yield {
        name: (live.app.state.wyoming.port, live.app.state.metrics)
        for name, live in running.items()
    }
    for live in running.values():
        stop_server(live)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


async def _request(port: int, pcm: bytes, stop: bool) -> tuple[str, str]:
    """Stream `pcm`; with `stop`, send audio-stop, else wait for the server to answer by
    itself. Returns the transcript and the answer to a second request on the connection."""
    async with AsyncTcpClient("127.0.0.1", port) as client:

        async def one(audio: bytes, send_stop: bool) -> str:
            await client.write_event(Transcribe(language="en").event())
            await client.write_event(AudioStart(rate=RATE, width=2, channels=1).event())
            for i in range(0, len(audio), 640):
                chunk = AudioChunk(rate=RATE, width=2, channels=1, audio=audio[i : i + 640])
                await client.write_event(chunk.event())
            if send_stop:
                await client.write_event(AudioStop().event())
            while True:
                event = await asyncio.wait_for(client.read_event(), 120)
                assert event is not None and event.type != "error", event
                if event.type == "transcript":
                    text = event.data["text"]
                    break
            while event.type != "transcript-stop":
                event = await asyncio.wait_for(client.read_event(), 120)
            if not send_stop:  # the satellite ends its request late; nothing more comes
                await client.write_event(AudioStop().event())
            return text

        first = await one(pcm, stop)
        second = await one(pcm[: RATE * 2 * 6 // 5], True)  # cut mid-speech: after audio-stop
        return first, second


def test_endpointing_answers_before_audio_stop_and_the_connection_goes_on(servers, said):
    port, metrics = servers["endpoint"]
    first, second = asyncio.run(_request(port, said[FIRST] + _silence(2.0), stop=False))
    assert {"kitchen", "lights"} <= _words(first)
    assert _words(second) & {"turn", "kitchen", "on"}
    assert metrics.wyoming_decodes.value(decoded="endpoint") == 1
    assert metrics.wyoming_decodes.value(decoded="after_stop") == 1  # the one without silence


def test_a_pause_inside_the_request_still_gives_the_whole_transcript(servers, said):
    port, metrics = servers["early"]
    pcm = said[FIRST] + _silence(0.7) + said[SECOND] + _silence(0.7)
    first, second = asyncio.run(_request(port, pcm, stop=True))
    assert {"kitchen", "garage"} <= _words(first), first
    assert _words(second) & {"turn", "kitchen", "on"}
    # The first request's answer was decoded at its (second) speech end, before audio-stop.
    assert metrics.wyoming_decodes.value(decoded="early") == 1
    assert metrics.wyoming_decodes.value(decoded="after_stop") == 1
