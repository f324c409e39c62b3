"""What a user of the Open WebUI machine sees after the open_webui role ran (and re-ran)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess

import httpx
from conftest import GATEWAY, WEBUI_URL

from tests.helpers.speech import synthesize_wav

SENTENCE = "please turn on the kitchen lights"
VERSION = "0.12.4"


def _words(text: str) -> list[str]:
    return "".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text).split()


def test_service_runs_as_its_own_user_and_starts_at_boot(host):
    service = host.service("open-webui")
    assert service.is_running
    assert service.is_enabled
    assert host.check_output("systemctl show -p User --value open-webui") == "open-webui"
    assert host.user("open-webui").shell == "/usr/sbin/nologin"


def test_pinned_version_is_installed_in_the_virtual_environment(host):
    out = host.check_output("/opt/open-webui/venv/bin/pip show open-webui")
    assert f"Version: {VERSION}" in out
    assert host.file("/opt/open-webui/venv").user == "root"


def test_listens_on_the_container_address_only(host):
    assert host.socket("tcp://10.204.0.20:8080").is_listening
    assert not host.socket("tcp://0.0.0.0:8080").is_listening


def test_health_answers_from_the_host():
    assert httpx.get(f"{WEBUI_URL}/health", timeout=30).json() == {"status": True}


def test_secret_key_is_readable_by_the_service_alone(host):
    key = host.file("/var/lib/open-webui/.webui_secret_key")
    assert key.user == "open-webui"
    assert key.mode == 0o600
    assert len(key.content_string.strip()) >= 32
    env = host.file("/etc/open-webui/open-webui.env")
    assert (env.user, env.mode) == ("root", 0o600)


def test_data_directory_is_private_and_holds_the_database(host):
    data = host.file("/var/lib/open-webui")
    assert (data.user, data.mode) == ("open-webui", 0o750)
    assert host.file("/var/lib/open-webui/webui.db").user == "open-webui"


def test_offline_mode_keeps_the_hub_out(host):
    env = host.file("/etc/open-webui/open-webui.env").content_string
    assert 'OFFLINE_MODE="true"' in env
    assert 'HF_HUB_OFFLINE="1"' in env
    log = host.check_output("journalctl -u open-webui --no-pager -o cat")
    assert "huggingface.co" not in log


def test_effective_audio_config_equals_the_inventory(webui):
    """side_effect stored a stale URL and model through the admin API; the re-run put them back."""
    stt = webui.audio_config()["stt"]
    assert stt["ENGINE"] == "openai"
    assert stt["OPENAI_API_BASE_URL"] == f"http://{GATEWAY}:8000/v1"
    assert stt["MODEL"] == "whisper-1"
    assert stt["OPENAI_API_KEY"] == ""


def test_ollama_connection_is_the_inventory_url(webui):
    r = httpx.get(
        f"{WEBUI_URL}/ollama/config", headers={"Authorization": f"Bearer {webui.token}"}, timeout=30
    )
    assert r.status_code == 200, r.text
    assert r.json()["ENABLE_OLLAMA_API"] is True
    assert r.json()["OLLAMA_BASE_URLS"] == [f"http://{GATEWAY}:11434"]


def test_spoken_sentence_through_open_webui_comes_back_as_text(webui, stt_url):
    text = webui.transcribe(synthesize_wav(SENTENCE))
    assert _words(text) == _words(SENTENCE)


def _browser_recording(wav: bytes) -> bytes:
    """WebM/Opus at 48 kHz, as Chrome's MediaRecorder records the microphone (ffmpeg-made)."""
    ffmpeg = shutil.which("ffmpeg")
    assert ffmpeg, "ffmpeg is not installed on the controller (apt-get install ffmpeg)"
    return subprocess.run(
        [ffmpeg, "-nostdin", "-loglevel", "error", "-f", "wav", "-i", "pipe:0",
         "-ar", "48000", "-c:a", "libopus", "-f", "webm", "pipe:1"],
        input=wav, capture_output=True, check=True,
    ).stdout  # fmt: skip


def test_browser_recording_reaches_the_stt_service_as_it_came(host, webui, stt_url):
    """The mic button's WebM/Opus, named recording.wav as call mode names it: the words."""
    env = host.file("/etc/open-webui/open-webui.env").content_string
    assert 'BYPASS_PYDUB_PREPROCESSING="true"' in env
    spoken = "set a timer for ten minutes"
    r = httpx.post(
        f"{WEBUI_URL}/api/v1/audio/transcriptions",
        files={"file": ("recording.wav", _browser_recording(synthesize_wav(spoken)), "audio/webm")},
        headers={"Authorization": f"Bearer {webui.token}"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    assert _words(r.json()["text"]) in (_words(spoken), _words("set a timer for 10 minutes"))


def test_stt_answers_from_inside_the_container(host, stt_url):
    """The browser's voice input path: the web container's network to the STT URL."""
    spoken = "what is the weather like today"
    # testinfra has no upload; the WAV travels base64-encoded through the connection.
    encoded = base64.b64encode(synthesize_wav(spoken)).decode()
    host.check_output(f"echo {encoded} | base64 -d > /tmp/voice.wav")
    out = host.check_output(
        "curl -fsS -F file=@/tmp/voice.wav -F model=whisper-1 "
        f"http://{GATEWAY}:8000/v1/audio/transcriptions"
    )
    assert _words(json.loads(out)["text"]) == _words(spoken)
