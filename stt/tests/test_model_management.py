"""Listing, loading and unloading models at run time, and idle unloading by TTL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from aistack_stt.config import Settings
from stt_testkit import LiveServer, Speech, start_server, stop_server


def test_models_list_names_the_default_and_local_models(server: LiveServer) -> None:
    with server.client() as http:
        body = http.get("/v1/models").json()
        assert body["object"] == "list"
        ids = [m["id"] for m in body["data"]]
        assert {"whisper-1", "tiny.en", "base", "large-v3-turbo"} <= set(ids)
        assert http.get("/v1/models/tiny.en").json()["id"] == "tiny.en"
        assert http.get("/v1/models/whisper-1").status_code == 200
        missing = http.get("/v1/models/not-a-model")
    assert missing.status_code == 404
    assert missing.json()["error"]["param"] == "model"


def test_api_ps_loads_lists_and_unloads_a_model(server: LiveServer) -> None:
    with server.client() as http:
        assert "tiny.en" in http.get("/api/ps").json()["models"]
        http.delete("/api/ps/base")  # in case an earlier test left it loaded
        assert "base" not in http.get("/api/ps").json()["models"]
        loaded = http.post("/api/ps/base")
        assert loaded.status_code == 201, loaded.text
        assert "base" in http.get("/api/ps").json()["models"]
        again = http.post("/api/ps/base")
        assert again.status_code == 409
        assert again.json()["error"]["code"] == "already_loaded"
        gone = http.delete("/api/ps/base")
        assert gone.status_code == 200
        assert "base" not in http.get("/api/ps").json()["models"]
        assert http.delete("/api/ps/base").status_code == 404
        assert http.post("/api/ps/no-such-model").status_code == 404
        unloads = http.get("/metrics").text
    assert 'aistack_stt_model_unloads_total{model="base",reason="request"}' in unloads


def test_hub_model_offline_is_503_with_reason(server: LiveServer, speech: Speech) -> None:
    # HF_HUB_OFFLINE is set for the whole test session (conftest.py): the hub is never
    # asked, and a repo id that is not in the model directory cannot be served.
    with server.client() as http:
        resp = http.post(
            "/v1/audio/transcriptions",
            files={"file": speech.command_wav.open("rb")},
            data={"model": "Systran/faster-whisper-small"},
        )
    assert resp.status_code == 503, resp.text
    message = resp.json()["error"]["message"]
    assert "Systran/faster-whisper-small" in message
    assert "could not be downloaded" in message
    assert "HF_HUB_OFFLINE" in message


@pytest.fixture(scope="module")
def ttl_server(models_dir: Path):
    live = start_server(Settings(model="tiny.en", model_dir=models_dir, device="cpu", model_ttl=1))
    yield live
    stop_server(live)


def _wait_for(predicate, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def _count(metrics: str, name: str, **labels: str) -> float:
    want = name + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
    return sum(float(ln.split()[-1]) for ln in metrics.splitlines() if ln.startswith(want + " "))


def test_idle_model_is_unloaded_after_ttl_and_reloads_on_use(
    ttl_server: LiveServer, speech: Speech
) -> None:
    unloads = "aistack_stt_model_unloads_total"
    loads = "aistack_stt_model_loads_total"
    with ttl_server.client() as http:
        # The default model, loaded at start, goes once it has been idle for the TTL.
        assert _wait_for(lambda: http.get("/api/ps").json()["models"] == [])
        assert http.get("/health").json()["models_loaded"] == []
        before = http.get("/metrics").text
        assert _count(before, unloads, model="tiny.en", reason="ttl") >= 1
        # Using it loads it again; idle again, it is unloaded again.
        resp = http.post("/v1/audio/transcriptions", files={"file": speech.command_wav.open("rb")})
        assert resp.status_code == 200
        assert "kitchen" in resp.json()["text"].lower()
        assert _wait_for(lambda: http.get("/api/ps").json()["models"] == [])
        after = http.get("/metrics").text
    assert _count(after, loads, model="tiny.en", outcome="ok") == (
        _count(before, loads, model="tiny.en", outcome="ok") + 1
    )
    assert _count(after, unloads, model="tiny.en", reason="ttl") == (
        _count(before, unloads, model="tiny.en", reason="ttl") + 1
    )
