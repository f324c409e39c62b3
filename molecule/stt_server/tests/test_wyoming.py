"""Home Assistant's side: a Wyoming client on the Incus host transcribes through the container.

Uses the real `wyoming` package (Home Assistant's client library) from the controller's venv.
"""

from __future__ import annotations

import asyncio
import wave

from conftest import Target, speak, words
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info

WYOMING_PORT = 10300  # the role's default, which this scenario keeps


def test_wyoming_port_is_listening_beside_the_api(host):
    assert host.socket(f"tcp://0.0.0.0:{WYOMING_PORT}").is_listening


def test_environment_enables_wyoming_without_an_allow_list(host):
    env = host.file("/etc/aistack-stt/aistack-stt.env").content_string
    assert "AISTACK_STT_WYOMING_ENABLED=true" in env
    assert f"AISTACK_STT_WYOMING_PORT={WYOMING_PORT}" in env
    assert "AISTACK_STT_WYOMING_ALLOW=\n" in env


async def _ask(target: Target, events: list, until: str) -> list:
    async with AsyncTcpClient(target.ip, WYOMING_PORT) as client:
        for event in events:
            await client.write_event(event)
        seen = []
        while True:
            event = await asyncio.wait_for(client.read_event(), 120)
            assert event is not None, f"connection closed after {[e.type for e in seen]}"
            seen.append(event)
            if event.type in (until, "error"):
                return seen


def test_describe_from_the_host_lists_the_served_model(target):
    events = asyncio.run(_ask(target, [Describe().event()], "info"))
    info = Info.from_event(events[-1])
    names = [m.name for m in info.asr[0].models]
    assert names[0] == target.base_host_vars["stt_server_model"]


def test_a_spoken_command_over_wyoming_comes_back_as_the_words(target, speech_dir):
    sentence = "Please turn on the lights in the kitchen."
    clip = speak(sentence, "en-us", speech_dir / "wyoming.wav")
    with wave.open(str(clip)) as wav:
        rate, width, channels = wav.getframerate(), wav.getsampwidth(), wav.getnchannels()
        pcm = wav.readframes(wav.getnframes())
    step = rate * width * channels // 50  # 20 ms, as a voice satellite sends it
    events = [Transcribe(language="en").event(), AudioStart(rate, width, channels).event()]
    events += [
        AudioChunk(rate, width, channels, pcm[i : i + step]).event()
        for i in range(0, len(pcm), step)
    ]
    events.append(AudioStop().event())
    answer = asyncio.run(_ask(target, events, "transcript"))
    assert answer[-1].type == "transcript", answer[-1]
    assert words(Transcript.from_event(answer[-1]).text) == words(sentence)
