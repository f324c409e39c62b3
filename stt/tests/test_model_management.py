"""Listing, loading and unloading models at run time, and idle unloading by TTL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from stt_testkit import LiveServer, Speech, serving_tiny


def test_models_list_names_the_default_and_local_models(server: LiveServer) -> None:
    with server.client() as http:
        body = http.get("/v1/models").json()
        assert body["object"] == "list"
        ids = [m["id"] for m in body["data"]]
        assert {"whisper-1", "tiny.en", "base"} <= set(ids)
        # Clients may not make the server download (client_models local): no hub aliases.
        assert "large-v3-turbo" not in ids
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


@pytest.fixture(scope="module")
def ttl_server(models_dir: Path):
    with serving_tiny(models_dir, model_ttl=1) as live:
        yield live


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
