"""Text-to-speech over OpenAI's API as its clients see it: the official `openai` package,
real piper-tts with a real voice from PyPI, and aistack-stt's own Whisper (tiny.en) to hear
what was said."""

from __future__ import annotations

import io
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from aistack_stt.config import TtsSettings
from stt_testkit import LiveServer, serving_tiny
from tts_testkit import SENTENCES, VOICE_NAME, voice_dir, word_error_rate, words

KEY = "tts-test-key"
LONG_TEXT = " ".join(SENTENCES * 2)  # forty sentences, about two minutes of speech


@pytest.fixture(scope="module")
def tts_server(models_dir: Path) -> Iterator[LiveServer]:
    tts = TtsSettings(voice=str(voice_dir()), max_input_chars=4096, max_queue=2)
    with serving_tiny(models_dir, cpu_threads=2, api_key=KEY, tts=tts) as live:
        # The voice loads in the background, right after start.
        assert live.app.state.tts.synthesizer.wait_loaded(60), "the voice did not load in 60 s"
        yield live


def _openai(live: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.url + "/v1", api_key=KEY, max_retries=0, timeout=120)


def _speak(client: openai.OpenAI, text: str, **kw) -> bytes:
    with client.audio.speech.with_streaming_response.create(
        model=kw.pop("model", "tts-1"), voice=kw.pop("voice", "alloy"), input=text, **kw
    ) as response:
        return response.read()


def _hear(client: openai.OpenAI, audio: bytes, name: str) -> str:
    return client.audio.transcriptions.create(model="tiny.en", file=(name, audio)).text


def test_twenty_sentences_spoken_over_openai_are_heard_back(tts_server: LiveServer) -> None:
    client = _openai(tts_server)
    pairs = []
    for sentence in SENTENCES:
        audio = _speak(client, sentence, response_format="wav")
        pairs.append((sentence, _hear(client, audio, "speech.wav")))
    wer = word_error_rate(pairs)
    assert wer <= 0.1, f"WER {wer:.3f}: {pairs}"


@pytest.mark.parametrize(
    ("fmt", "magic"),
    [("mp3", (b"ID3", b"\xff\xf3", b"\xff\xfb")), ("opus", (b"OggS",)), ("aac", (b"\xff\xf1",)),
     ("flac", (b"fLaC",)), ("wav", (b"RIFF",))],
)  # fmt: skip
def test_every_compressed_format_is_audio_whisper_understands(
    tts_server: LiveServer, fmt: str, magic: tuple[bytes, ...]
) -> None:
    client = _openai(tts_server)
    audio = _speak(client, "The front door is locked.", response_format=fmt)
    assert audio.startswith(magic)
    assert {"front", "door", "locked"} <= set(words(_hear(client, audio, f"speech.{fmt}")))


def test_pcm_is_openais_raw_24khz_16_bit_mono(tts_server: LiveServer) -> None:
    client = _openai(tts_server)
    pcm = _speak(client, "The front door is locked.", response_format="pcm")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(24000)
        wav.writeframes(pcm)
    assert 1.0 < len(pcm) / 48000 < 4.0  # seconds of speech at 24 kHz
    assert {"front", "door", "locked"} <= set(words(_hear(client, buffer.getvalue(), "a.wav")))


def test_speed_two_says_the_same_in_less_time(tts_server: LiveServer) -> None:
    client = _openai(tts_server)
    text = "Please close the garage door before you go to bed."
    normal = _speak(client, text, response_format="pcm")
    fast = _speak(client, text, response_format="pcm", speed=2.0)
    assert 0.35 < len(fast) / len(normal) < 0.75  # the silence around speech stays
    assert {"garage", "door"} <= set(words(_hear(client, _wav24(fast), "fast.wav")))


def _wav24(pcm: bytes) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1), wav.setsampwidth(2), wav.setframerate(24000)
        wav.writeframes(pcm)
    return buffer.getvalue()


def test_first_audio_arrives_while_the_rest_is_still_being_synthesised(
    tts_server: LiveServer,
) -> None:
    synthesizer = tts_server.app.state.tts.synthesizer
    body = {"model": "tts-1", "voice": "alloy", "input": LONG_TEXT, "response_format": "pcm"}
    with tts_server.client() as http:
        before = synthesizer.sentences
        with http.stream(
            "POST", "/v1/audio/speech", json=body, headers={"Authorization": f"Bearer {KEY}"}
        ) as response:
            assert response.status_code == 200
            chunks = response.iter_bytes()
            assert next(chunks)
            spoken = synthesizer.sentences - before
        # Forty sentences were asked for; the first audio came after a few of them.
        assert spoken < len(SENTENCES)


def test_the_voices_are_listed_where_open_webui_and_speaches_clients_look(
    tts_server: LiveServer,
) -> None:
    # Open WebUI asks for the voice and model lists without the key.
    listing = httpx.get(tts_server.url + "/v1/audio/voices").json()
    assert [v["id"] for v in listing["voices"]] == [VOICE_NAME]
    assert listing["state"] == "ok"
    models = httpx.get(tts_server.url + "/v1/audio/models").json()["models"]
    assert {"tts-1", VOICE_NAME} <= {m["id"] for m in models}
    cards = {m.id: m for m in _openai(tts_server).models.list().data}
    assert cards[VOICE_NAME].task == "text-to-speech"
    assert cards["tiny.en"].task == "automatic-speech-recognition"


def test_speech_needs_the_same_key_as_transcription(tts_server: LiveServer) -> None:
    client = openai.OpenAI(base_url=tts_server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        _speak(client, "Hello.")


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"voice": "bob"}, 404, f"use one of {VOICE_NAME}"),
        ({"model": "kokoro"}, 404, VOICE_NAME),
        ({"response_format": "ogg"}, 400, "mp3, opus, aac, flac, wav, pcm"),
        ({"input": ""}, 400, "input is missing or empty"),
        ({"input": "a" * 4097}, 400, "the limit is 4096"),
        ({"speed": 9}, 400, "outside 0.25 to 4.0"),
        ({"speed": "fast"}, 400, "not a number"),
        ({"input": 5}, 400, "input must be a string"),
    ],
)
def test_bad_requests_are_4xx_naming_the_problem_and_the_server_keeps_speaking(
    tts_server: LiveServer, body: dict, status: int, needle: str
) -> None:
    request = {"model": "tts-1", "voice": "alloy", "input": "Hello.", **body}
    with tts_server.client(headers={"Authorization": f"Bearer {KEY}"}) as http:
        response = http.post("/v1/audio/speech", json=request)
        assert response.status_code == status
        assert needle in response.json()["error"]["message"]
        ok = http.post("/v1/audio/speech", json={"input": "Still here.", "response_format": "wav"})
        assert ok.status_code == 200 and len(ok.content) > 10000


def test_a_body_that_is_not_json_is_a_400(tts_server: LiveServer) -> None:
    with tts_server.client(headers={"Authorization": f"Bearer {KEY}"}) as http:
        response = http.post(
            "/v1/audio/speech", content=b"input=hello", headers={"content-type": "text/plain"}
        )
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]["message"]


def test_a_full_queue_is_a_503_and_clears_when_the_speech_ends(tts_server: LiveServer) -> None:
    body = {"input": LONG_TEXT, "response_format": "pcm"}
    headers = {"Authorization": f"Bearer {KEY}"}
    with tts_server.client(headers=headers) as first, tts_server.client(headers=headers) as other:
        with first.stream("POST", "/v1/audio/speech", json=body) as a, other.stream(
            "POST", "/v1/audio/speech", json=body
        ) as b:  # max_queue is 2: both admitted, still speaking
            assert (a.status_code, b.status_code) == (200, 200)
            # Each reads its first audio and keeps its stream (a dropped iterator hangs up).
            streams = [a.iter_bytes(), b.iter_bytes()]
            assert all(next(stream) for stream in streams)
            refused = first.post("/v1/audio/speech", json={"input": "One more."})
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "queue_full"
        # Both clients hung up: their places are given back once the server notices.
        synthesizer = tts_server.app.state.tts.synthesizer
        deadline = time.monotonic() + 60
        while synthesizer.busy and time.monotonic() < deadline:
            time.sleep(0.05)
        assert synthesizer.busy == 0
        ok = first.post("/v1/audio/speech", json={"input": "One more.", "response_format": "wav"})
        assert ok.status_code == 200


def test_a_server_without_a_voice_says_how_to_get_one(server: LiveServer) -> None:
    with server.client() as http:
        response = http.post("/v1/audio/speech", json={"input": "Hello."})
        assert response.status_code == 404
        assert "--tts-voice" in response.json()["error"]["message"]
        assert http.get("/v1/audio/voices").json()["voices"] == []


def test_a_voice_that_is_not_there_stops_serve_with_one_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "aistack_stt.cli", "serve", "--tts-voice", str(tmp_path / "no")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "neither a Piper .onnx file nor a directory" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip().count("\n") == 0


def test_a_voice_without_its_config_is_refused_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "x.onnx").write_bytes(b"onnx")
    proc = subprocess.run(
        [sys.executable, "-m", "aistack_stt.cli", "serve", "--tts-voice", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "x.onnx.json is missing" in proc.stderr
