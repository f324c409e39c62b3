"""What each browser's microphone recording becomes: the words, whatever the upload claims.

Chrome and Firefox record `audio/webm;codecs=opus` (Firefox sometimes ogg/opus), Safari
records AAC in a fragmented MP4 (moov first and empty, then moof fragments), and Open WebUI
may re-encode any of them to mp3 before it posts them. Uploads often arrive named
`recording.wav` or with a generic content type, so the server must look at the bytes, not
the label. Each recording here is a real encoding by ffmpeg (Debian's) of espeak-ng speech.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from stt_testkit import LiveServer, Speech

# name -> (file suffix, true content type, ffmpeg output options)
RECORDINGS = {
    "webm-opus-48k": (".webm", "audio/webm;codecs=opus", ["-c:a", "libopus", "-ar", "48000"]),
    "ogg-opus": (".ogg", "audio/ogg;codecs=opus", ["-c:a", "libopus", "-ar", "48000"]),
    "m4a-aac": (".m4a", "audio/mp4", ["-c:a", "aac", "-ar", "44100"]),
    "mp4-aac-fragmented": (
        ".mp4",
        "audio/mp4",
        [
            "-c:a",
            "aac",
            "-ar",
            "48000",
            "-f",
            "mp4",
            "-movflags",
            "frag_keyframe+empty_moov+default_base_moof",
        ],
    ),
    "mp3": (".mp3", "audio/mpeg", ["-c:a", "libmp3lame", "-b:a", "32k"]),
    "wav-48k-stereo": (".wav", "audio/wav", ["-c:a", "pcm_s16le", "-ar", "48000", "-ac", "2"]),
    "flac": (".flac", "audio/flac", ["-c:a", "flac"]),
}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


@pytest.fixture(scope="module")
def recordings(speech: Speech, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.fail("ffmpeg is not installed (apt-get install ffmpeg)")
    out = tmp_path_factory.mktemp("recordings")
    made = {}
    for name, (suffix, _, options) in RECORDINGS.items():
        path = out / f"{name}{suffix}"
        subprocess.run(
            [ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(speech.command_wav), *options,
             str(path)],
            check=True,
        )  # fmt: skip
        made[name] = path
    return made


def test_safari_recording_is_really_fragmented(recordings: dict[str, Path]) -> None:
    """The test file has the layout Safari writes: an empty moov, then moof fragments."""
    data = recordings["mp4-aac-fragmented"].read_bytes()
    assert b"moof" in data and b"mvex" in data
    assert data.index(b"moov") < data.index(b"moof") < data.index(b"mdat")


@pytest.mark.parametrize("labelled", ["truly", "as recording.wav", "as octet-stream"])
@pytest.mark.parametrize("recording", list(RECORDINGS))
def test_browser_recording_returns_the_words(
    server: LiveServer, recordings: dict[str, Path], recording: str, labelled: str
) -> None:
    path = recordings[recording]
    name, ctype = {
        "truly": (path.name, RECORDINGS[recording][1]),
        "as recording.wav": ("recording.wav", "audio/wav"),
        "as octet-stream": ("blob", "application/octet-stream"),
    }[labelled]
    with server.client() as http:
        resp = http.post(
            "/v1/audio/transcriptions",
            files={"file": (name, path.read_bytes(), ctype)},
            data={"model": "tiny.en"},
        )
    assert resp.status_code == 200, resp.text
    assert {"kitchen", "lights", "timer", "minutes"} <= _words(resp.json()["text"]), resp.text
