"""Text-to-speech from the deployed service: the voice from PyPI, Piper installed by the role,
mp3 through ffmpeg, and the same Wyoming port speaking. Heard back by the service itself."""

from __future__ import annotations

import asyncio
import json
import urllib.request

from conftest import Target, words
from wyoming.audio import AudioChunk, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize

WYOMING_PORT = 10300
VOICE = "en_US-joe-medium"
SENTENCE = "The front door is locked and the alarm is set."


def _post(url: str, body: bytes, content_type: str) -> bytes:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=120) as response:
        return response.read()


def _transcribe(target: Target, audio: bytes, name: str) -> str:
    boundary = "aistack-tts-test"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode() + audio + f"\r\n--{boundary}--\r\n".encode()
    answer = _post(f"{target.url}/v1/audio/transcriptions", body,
                   f"multipart/form-data; boundary={boundary}")
    return json.loads(answer)["text"]


def test_the_voice_is_in_place_and_named_in_the_environment(host):
    env = host.file("/etc/aistack-stt/aistack-stt.env").content_string
    voices = f"/var/lib/aistack-stt/voices/{VOICE}"
    assert f"AISTACK_STT_TTS_VOICE={voices}\n" in env
    assert host.file(f"{voices}/{VOICE}.onnx").exists
    assert host.file(f"{voices}/{VOICE}.onnx.json").exists


def test_speech_in_mp3_is_heard_back_as_the_same_words(target):
    body = json.dumps({"model": "tts-1", "voice": "alloy", "input": SENTENCE}).encode()
    audio = _post(f"{target.url}/v1/audio/speech", body, "application/json")
    assert audio[:3] == b"ID3" or audio[:2] in (b"\xff\xf3", b"\xff\xfb")
    assert words(_transcribe(target, audio, "speech.mp3")) == words(SENTENCE)


def test_the_wyoming_port_speaks_with_the_voice(target):
    async def run() -> tuple[Info, int]:
        async with AsyncTcpClient(target.ip, WYOMING_PORT) as client:
            await client.write_event(Describe().event())
            info = Info.from_event(await asyncio.wait_for(client.read_event(), 60))
            await client.write_event(Synthesize(SENTENCE).event())
            size = 0
            while (event := await asyncio.wait_for(client.read_event(), 120)) is not None:
                if AudioChunk.is_type(event.type):
                    size += len(AudioChunk.from_event(event).audio)
                if AudioStop.is_type(event.type) or event.type == "error":
                    break
            return info, size

    info, size = asyncio.run(run())
    assert [v.name for v in info.tts[0].voices] == [VOICE]
    assert size > 22050 * 2  # more than a second of 16-bit audio
