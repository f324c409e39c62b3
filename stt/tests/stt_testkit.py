"""Helpers shared by the aistack-stt tests: speech synthesis and in-process live servers."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import av
import httpx
import pytest
import uvicorn
from aistack_stt.app import create_app
from aistack_stt.config import Settings
from aistack_stt.wyoming import WyomingSettings
from faster_whisper import decode_audio

from tests.helpers.stt_server import NotReady, free_port, wait_ready, wait_settled

REPO = Path(__file__).resolve().parents[2]

COMMAND_TEXT = "Turn on the kitchen lights and set a timer for ten minutes."
FRENCH_TEXT = "Bonjour, je voudrais un café et un croissant, s'il vous plaît."


def speech_file(directory: Path, voice: str, text: str) -> Path:
    """Where a synthesized clip is kept in AISTACK_SPEECH_DIR (bench/gpu_stage.sh fills it
    here, for a lent GPU machine that has no espeak-ng): by voice and text."""
    return directory / f"{voice}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.wav"


def _espeak(text: str, voice: str, out: Path) -> Path:
    cached = os.environ.get("AISTACK_SPEECH_DIR")
    if cached and speech_file(Path(cached), voice, text).is_file():
        shutil.copyfile(speech_file(Path(cached), voice, text), out)
        return out
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (apt-get install espeak-ng)")
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(out), text], check=True)
    return out


def _encode(src: Path, out: Path, fmt: str, codec: str, rate: int, layout: str = "mono") -> Path:
    """Re-encode with PyAV (libmp3lame, libopus, aac, flac ship in its wheel)."""
    with av.open(str(src)) as inp, av.open(str(out), "w", format=fmt) as outp:
        stream = outp.add_stream(codec, rate=rate)
        stream.layout = layout
        resampler = av.AudioResampler(format=stream.format.name, layout=layout, rate=rate)
        for frame in inp.decode(audio=0):
            frame.pts = None
            for rframe in resampler.resample(frame):
                for packet in stream.encode(rframe):
                    outp.mux(packet)
        for rframe in resampler.resample(None):
            for packet in stream.encode(rframe):
                outp.mux(packet)
        for packet in stream.encode(None):
            outp.mux(packet)
    return out


def _pcm16k(src: Path, out: Path) -> Path:
    out.write_bytes((decode_audio(str(src)) * 32768).astype("<i2").tobytes())
    return out


@dataclass(frozen=True)
class Speech:
    command_wav: Path
    french_wav: Path
    variants: dict[str, tuple[Path, str]]  # name -> (file, content type)
    duration: float  # seconds of the command as espeak-ng wrote it


@dataclass
class LiveServer:
    url: str
    app: object
    server: uvicorn.Server
    thread: threading.Thread

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=120, **kw)


def start_server(
    settings: Settings, *, wyoming: WyomingSettings | None = None, ready: bool = True, **app_kw
) -> LiveServer:
    """The app in this process under uvicorn on a free port, once `/health` says ok (the
    one rule, tests/helpers/stt_server.py); `ready=False` returns once it has settled, "ok"
    or "error" (a test of the error state). HTTP test servers leave the Wyoming port alone
    unless given `wyoming` settings: several test runs share this machine, and 10300 is
    one port."""
    settings = replace(settings, wyoming=wyoming or replace(settings.wyoming, enabled=False))
    port = free_port()
    app = create_app(settings, **app_kw)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    live = LiveServer(f"http://127.0.0.1:{port}", app, server, thread)
    try:
        (wait_ready if ready else wait_settled)(live.url, timeout=120)
    except NotReady:
        stop_server(live)
        raise
    return live


def stop_server(live: LiveServer) -> None:
    live.server.should_exit = True
    live.thread.join(timeout=30)


@contextmanager
def serving_tiny(models_dir: Path, **settings) -> Iterator[LiveServer]:
    """A live server on the CPU with tiny.en as its default model and `settings` over the
    defaults, stopped when the block ends (a fixture yields inside it)."""
    live = start_server(Settings(model="tiny.en", model_dir=models_dir, device="cpu", **settings))
    try:
        yield live
    finally:
        stop_server(live)


def make_speech(d: Path) -> Speech:
    wav = _espeak(COMMAND_TEXT, "en-us", d / "command.wav")
    french = _espeak(FRENCH_TEXT, "fr", d / "french.wav")
    variants = {
        "wav": (wav, "audio/wav"),
        "mp3": (_encode(wav, d / "command.mp3", "mp3", "libmp3lame", 22050), "audio/mpeg"),
        "ogg-opus": (_encode(wav, d / "command.ogg", "ogg", "libopus", 48000), "audio/ogg"),
        "webm-opus": (_encode(wav, d / "command.webm", "webm", "libopus", 48000), "audio/webm"),
        "m4a-aac": (_encode(wav, d / "command.m4a", "ipod", "aac", 44100), "audio/mp4"),
        "flac": (_encode(wav, d / "command.flac", "flac", "flac", 22050), "audio/flac"),
        "pcm": (_pcm16k(wav, d / "command.pcm"), "audio/pcm"),
        "wav-stereo-48k": (
            _encode(wav, d / "stereo.wav", "wav", "pcm_s16le", 48000, layout="stereo"),
            "audio/wav",
        ),
    }
    with av.open(str(wav)) as container:
        stream = container.streams.audio[0]
        seconds = float(stream.duration * stream.time_base)
    return Speech(wav, french, variants, seconds)
