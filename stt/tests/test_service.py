"""Health, readiness, metrics and the API key: what operators and the Ansible role rely on."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest
from aistack_stt import __version__
from aistack_stt.config import Settings
from openai import OpenAI
from stt_testkit import LiveServer, Speech, serving_tiny, start_server, stop_server


def test_health_reports_model_device_compute_type_and_readiness(server: LiveServer) -> None:
    with server.client() as http:
        health = http.get("/health")
        ready = http.get("/health/ready")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok" and body["ready"] is True
    assert body["model"] == "tiny.en"
    assert "tiny.en" in body["models_loaded"]
    assert body["device"] == "cpu"
    assert body["compute_type"] == "int8"
    assert body["version"] == __version__
    assert ready.status_code == 200


def test_default_model_that_cannot_load_leaves_server_live_but_not_ready(
    tmp_path: Path,
) -> None:
    live = start_server(Settings(model=str(tmp_path / "missing"), model_dir=tmp_path), ready=False)
    try:
        with live.client() as http:
            body = http.get("/health").json()
            ready = http.get("/health/ready")
    finally:
        stop_server(live)
    assert body["status"] == "error" and body["ready"] is False
    assert "does not exist" in body["error"]
    assert ready.status_code == 503


def _metric(text: str, prefix: str) -> float:
    return sum(float(ln.split()[-1]) for ln in text.splitlines() if ln.startswith(prefix))


def test_metrics_count_requests_audio_and_real_time_factor(
    server: LiveServer, speech: Speech
) -> None:
    with server.client() as http:
        before = http.get("/metrics").text
        http.post("/v1/audio/transcriptions", files={"file": speech.command_wav.open("rb")})
        http.post("/v1/audio/transcriptions", files={"file": ("a.wav", b"", "audio/wav")})
        after = http.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = after.text
    ok = 'aistack_stt_requests_total{endpoint="/v1/audio/transcriptions",status="200"}'
    bad = 'aistack_stt_requests_total{endpoint="/v1/audio/transcriptions",status="400"}'
    assert _metric(text, ok) == _metric(before, ok) + 1
    assert _metric(text, bad) == _metric(before, bad) + 1
    audio = _metric(text, "aistack_stt_audio_seconds_total")
    assert 3.5 < audio - _metric(before, "aistack_stt_audio_seconds_total") < 4.5
    assert _metric(text, "aistack_stt_real_time_factor_count") >= 1
    assert "aistack_stt_request_duration_seconds_bucket" in text
    assert "aistack_stt_queue_depth 0" in text
    assert 'aistack_stt_model_loads_total{model="tiny.en",outcome="ok"}' in text
    # Every sample line parses as name{labels} value.
    for line in text.splitlines():
        if line and not line.startswith("#"):
            float(line.rsplit(" ", 1)[1])


@pytest.fixture(scope="module")
def keyed_server(models_dir: Path):
    with serving_tiny(models_dir, api_key="s3cret") as live:
        yield live


def test_api_key_is_required_except_for_health(keyed_server: LiveServer, speech: Speech) -> None:
    with httpx.Client(base_url=keyed_server.url, timeout=60) as http:
        assert http.get("/health").status_code == 200
        assert http.get("/health/ready").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            resp = http.get("/v1/models", headers=headers)
            assert resp.status_code == 401
            assert resp.json()["error"]["code"] == "invalid_api_key"
        assert http.get("/metrics").status_code == 401
        assert http.get("/api/ps").status_code == 401

    denied = OpenAI(base_url=keyed_server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError), speech.command_wav.open("rb") as fh:
        denied.audio.transcriptions.create(model="whisper-1", file=fh)
    client = OpenAI(base_url=keyed_server.url + "/v1", api_key="s3cret", max_retries=0)
    with speech.command_wav.open("rb") as fh:
        result = client.audio.transcriptions.create(model="whisper-1", file=fh)
    assert "kitchen" in result.text.lower()
