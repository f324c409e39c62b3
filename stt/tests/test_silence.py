"""Nobody spoke, so no words: silence, noise, hum and clicks come back as empty text.

Whisper (tiny.en here) answers "You" to 12 s of digital silence, to loud pink or brown noise
and to mains hum. In a voice chat that word is sent to the model. The server must return
200 with empty text instead, and must keep every word of real speech, also with noise under
it. Clips are made with sox and espeak-ng; the request overrides are the documented extra
form fields (silence.py).
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from aistack_stt import silence
from aistack_stt.audio import decode
from aistack_stt.config import SchedulerSettings, Settings
from aistack_stt.engine import Transcriber, TranscriptionRequest
from aistack_stt.models import ModelManager
from aistack_stt.scheduling import Scheduler
from aistack_stt.speech_gate import SpeechGate
from stt_testkit import LiveServer, Speech


def _sox(*args: str) -> None:
    if shutil.which("sox") is None:
        pytest.fail("sox is not installed (apt-get install sox)")
    subprocess.run(["sox", *args], check=True, capture_output=True)


def _synth(out: Path, seconds: float, *effect: str) -> Path:
    # -R seeds sox's noise generators: the same noise on every run, so a test that fails
    # fails every time (random noise made the speech-under-noise case pass or fail by draw).
    _sox("-R", "-n", "-r", "16000", "-c", "1", "-b", "16", str(out), "synth", str(seconds), *effect)
    return out


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _transcribe(server: LiveServer, path: Path, **fields: str):
    with server.client() as http:
        return http.post(
            "/v1/audio/transcriptions",
            files={"file": ("recording.wav", path.read_bytes(), "audio/wav")},
            data={"model": "tiny.en", "response_format": "verbose_json", **fields},
        )


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("silence")


@pytest.mark.parametrize("seconds", [0.3, 2, 12, 29, 45])
def test_digital_silence_of_any_length_gives_no_words(
    server: LiveServer, clips: Path, seconds: float
) -> None:
    path = _synth(clips / f"silence-{seconds}.wav", seconds, "sine", "0", "vol", "0")
    resp = _transcribe(server, path)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["text"] == "", body
    assert body["segments"] == []
    assert abs(body["duration"] - seconds) < 0.05


@pytest.mark.parametrize(
    "effect",
    [
        ("whitenoise", "vol", "0.01"),
        ("whitenoise", "vol", "0.6"),
        ("pinknoise", "vol", "0.05"),
        ("pinknoise", "vol", "0.6"),
        ("brownnoise", "vol", "0.2"),
        ("brownnoise", "vol", "0.9"),
        ("sine", "50", "vol", "0.3"),  # mains hum
        ("sine", "60", "vol", "0.8"),
    ],
    ids=lambda e: "-".join(e),
)
def test_noise_and_hum_without_speech_give_no_words(
    server: LiveServer, clips: Path, effect: tuple[str, ...]
) -> None:
    path = _synth(clips / f"{'-'.join(effect)}.wav", 4, *effect)
    resp = _transcribe(server, path)
    assert resp.status_code == 200, resp.text
    assert resp.json()["text"] == "", resp.json()


def test_a_click_of_the_mic_gives_no_words(server: LiveServer, clips: Path) -> None:
    half = _synth(clips / "half.wav", 1.0, "sine", "0", "vol", "0")
    burst = _synth(clips / "burst.wav", 0.005, "square", "1000", "vol", "0.9")
    click = clips / "click.wav"
    _sox(str(half), str(burst), str(half), str(click))
    resp = _transcribe(server, click)
    assert resp.status_code == 200, resp.text
    assert resp.json()["text"] == ""


@pytest.mark.parametrize(
    ("colour", "level"), [("pinknoise", "0.2"), ("whitenoise", "0.1"), ("brownnoise", "0.3")]
)
def test_speech_with_noise_under_it_keeps_its_words(
    server: LiveServer, speech: Speech, clips: Path, colour: str, level: str
) -> None:
    noise = _synth(clips / f"under-{colour}.wav", speech.duration + 0.2, colour, "vol", level)
    command = clips / "command-16k.wav"
    _sox(str(speech.command_wav), "-r", "16000", "-c", "1", "-b", "16", str(command))
    mixed = clips / f"mixed-{colour}.wav"
    _sox("-m", str(command), str(noise), str(mixed))
    resp = _transcribe(server, mixed)
    assert resp.status_code == 200, resp.text
    assert {"kitchen", "lights", "timer"} <= set(_words(resp.json()["text"])), resp.json()["text"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Stop.", ["stop"]), ("Lights off.", ["lights", "off"]), ("Next song.", ["next", "song"])],
)
def test_short_commands_keep_all_their_words(
    server: LiveServer, clips: Path, text: str, expected: list[str]
) -> None:
    raw = clips / f"raw-{expected[0]}.wav"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(raw), text], check=True)
    padded = clips / f"cmd-{expected[0]}.wav"
    _sox(str(raw), "-r", "16000", str(padded), "pad", "0.5", "0.5")
    resp = _transcribe(server, padded)
    assert resp.status_code == 200, resp.text
    assert _words(resp.json()["text"]) == expected, resp.json()["text"]


def test_vad_filter_false_sends_silence_to_the_model(server: LiveServer, clips: Path) -> None:
    """The override reaches the engine: without the gate, tiny.en invents its usual word."""
    path = _synth(clips / "silence-off.wav", 12, "sine", "0", "vol", "0")
    assert _transcribe(server, path).json()["text"] == ""
    resp = _transcribe(server, path, vad_filter="false")
    assert resp.status_code == 200, resp.text
    assert resp.json()["text"] != ""


def test_request_can_demand_more_speech_than_a_clip_has(server: LiveServer, speech: Speech) -> None:
    resp = _transcribe(server, speech.command_wav, vad_min_speech_ms="10000")
    assert resp.status_code == 200, resp.text
    assert resp.json()["text"] == ""


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("vad_filter", "maybe", "is not true or false"),
        ("no_speech_threshold", "high", "is not a number"),
        ("no_speech_threshold", "1.5", "outside 0 to 1"),
        ("log_prob_threshold", "2", "outside -100 to 0"),
        ("vad_min_speech_ms", "0.5", "is not a whole number"),
    ],
)
def test_bad_override_is_a_400_naming_the_field(
    server: LiveServer, speech: Speech, field: str, value: str, message: str
) -> None:
    resp = _transcribe(server, speech.command_wav, **{field: value})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["param"] == field
    assert message in error["message"]
    assert _transcribe(server, speech.command_wav).status_code == 200  # still serving


def test_form_fields_apply_over_the_defaults() -> None:
    given = {"vad_filter": "off", "no_speech_threshold": "0.8", "model": "tiny.en"}
    options = silence.from_form(given.get)
    assert options.vad_filter is False
    assert options.no_speech_threshold == 0.8
    assert options.log_prob_threshold == silence.DEFAULT.log_prob_threshold
    assert silence.from_form({}.get) is silence.DEFAULT


def test_vad_finds_no_speech_in_silence_or_noise() -> None:
    rng = np.random.default_rng(1)
    assert not silence.has_speech(np.zeros(16000 * 3, dtype=np.float32))
    noise = (rng.standard_normal(16000 * 3) * 0.2).astype(np.float32)
    assert not silence.has_speech(noise)
    assert silence.has_speech(noise, silence.SilenceOptions(vad_filter=False))


def test_the_gate_is_a_transcriber_that_keeps_silence_from_the_scheduler(
    models_dir: Path, speech: Speech
) -> None:
    models = ModelManager(
        Settings(model="tiny.en", model_dir=models_dir, device="cpu", cpu_threads=2)
    )
    scheduler = Scheduler(models, SchedulerSettings())
    gate = SpeechGate(scheduler, models)
    assert isinstance(gate, Transcriber)
    quiet = np.zeros(16000 * 5, dtype=np.float32)
    words = decode(speech.command_wav.read_bytes(), "audio/wav")

    def batches() -> int:
        return sum(lane["batches"] for lane in gate.health()["lanes"].values())

    async def run() -> None:
        result = await gate.transcribe(TranscriptionRequest(audio=quiet, model="whisper-1"))
        assert result.text == "" and result.segments == [] and result.model == "tiny.en"
        assert abs(result.duration - 5.0) < 0.01
        assert batches() == 0  # never decoded
        spoken = await gate.transcribe(TranscriptionRequest(audio=words, model="whisper-1"))
        assert "kitchen" in spoken.text.lower()
        assert batches() == 1

    try:
        asyncio.run(run())
        assert "aistack_stt" in gate.render_metrics()
    finally:
        gate.close()
        models.close()
