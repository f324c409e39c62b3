"""The language a user picks is honoured; without one the spoken language is detected.

Open WebUI sends the user's Speech-to-Text language as the `language` form field, in the
browser's recording format, and sends no field when the user picked none. Multilingual
base, French speech from espeak-ng, recorded as WebM/Opus the way a browser does.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from stt_testkit import LiveServer, Speech


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-zéèàçû']+", text.lower()))


@pytest.fixture(scope="module")
def french_webm(speech: Speech, tmp_path_factory: pytest.TempPathFactory) -> Path:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        pytest.fail("ffmpeg is not installed (apt-get install ffmpeg)")
    out = tmp_path_factory.mktemp("language") / "french.webm"
    subprocess.run(
        [ffmpeg, "-nostdin", "-loglevel", "error", "-i", str(speech.french_wav), "-ar", "48000",
         "-c:a", "libopus", str(out)],
        check=True,
    )  # fmt: skip
    return out


def _post(server: LiveServer, path: Path, **fields: str) -> dict:
    with server.client() as http:
        resp = http.post(
            "/v1/audio/transcriptions",
            files={"file": ("recording.wav", path.read_bytes(), "audio/webm")},
            data={"model": "base", "response_format": "verbose_json", **fields},
        )
    assert resp.status_code == 200, resp.text
    return resp.json()


@pytest.mark.parametrize("language", ["fr", None], ids=["picked", "detected"])
def test_french_recording_comes_back_in_french(
    server: LiveServer, french_webm: Path, language: str | None
) -> None:
    body = _post(server, french_webm, **({"language": language} if language else {}))
    assert body["language"] == "fr"
    if language is None:
        assert body["language_probability"] > 0.5
    assert {"bonjour", "croissant"} <= _words(body["text"]), body["text"]


def test_picked_language_wins_over_detection(server: LiveServer, french_webm: Path) -> None:
    """Asked for English, the French speech is written in English words, not French."""
    body = _post(server, french_webm, language="en")
    assert body["language"] == "en"
    assert "bonjour" not in _words(body["text"]), body["text"]
