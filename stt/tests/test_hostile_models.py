"""Models are the operator's choice: a client names one of the served models, nothing else.

A hostile client tries directories (`/etc`, `..`), spellings of one model, very long names
and hub repo ids; each gets a clean 4xx that says what to use instead and is the same whether
or not such a directory exists, nothing is loaded or downloaded, and the server keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets
from hostile_server import HubRecorder, start_process
from stt_testkit import LiveServer, Speech, _pcm16k, serving_tiny

HOSTILE_IDS = [
    "/etc",
    "/",
    "/proc/self",
    "/nonexistent-aistack-model",
    "..",
    ".",
    "../models/tiny.en",
    "tiny.en/",
    "tiny.en//",
    "tiny.en/.",
    "./tiny.en",
    "~",
    "~root/.ssh",
    "bad\x07name",
]


def _loads(metrics: str, outcome: str) -> float:
    pattern = re.compile(r'^aistack_stt_model_loads_total\{model="[^"]*",outcome="' + outcome)
    return sum(float(ln.split()[-1]) for ln in metrics.splitlines() if pattern.match(ln))


def _count(metrics: str, model: str, outcome: str = "ok") -> float:
    want = f'aistack_stt_model_loads_total{{model="{model}",outcome="{outcome}"}} '
    return sum(float(ln.split()[-1]) for ln in metrics.splitlines() if ln.startswith(want))


def _encoded(model_id: str) -> str:
    """Every byte percent-encoded, so that no client library tidies `..` or `//` away."""
    return "".join(f"%{b:02X}" for b in model_id.encode())


def _transcribe(http: httpx.Client, speech: Speech, model: str) -> httpx.Response:
    return http.post(
        "/v1/audio/transcriptions",
        files={"file": speech.command_wav.open("rb")},
        data={"model": model},
    )


def _assert_heard(resp: httpx.Response) -> None:
    assert resp.status_code == 200, resp.text
    assert "kitchen" in resp.json()["text"].lower()


def test_directories_and_odd_spellings_are_refused_and_nothing_loads(
    server: LiveServer, speech: Speech
) -> None:
    with server.client() as http:
        before = http.get("/metrics").text
        loaded = http.get("/api/ps").json()["models"]
        answers = {}
        for mid in HOSTILE_IDS:
            resp = _transcribe(http, speech, mid)
            assert resp.status_code in (400, 404), (mid, resp.text)
            err = resp.json()["error"]
            assert err["param"] == "model", err
            answers[mid] = (resp.status_code, err["message"].replace(repr(mid), "<id>"))
            card = http.get("/v1/models/" + _encoded(mid))
            assert card.status_code in (400, 404), (mid, card.text)
            assert card.json()["error"]["message"] == err["message"]
            assert http.post("/api/ps/" + _encoded(mid)).status_code in (400, 404)
        after = http.get("/metrics").text
        assert http.get("/api/ps").json()["models"] == loaded
        # No directory-exists oracle: /etc and a path that does not exist read the same.
        assert answers["/etc"] == answers["/nonexistent-aistack-model"]
        assert answers["/"] == answers["/proc/self"]
        assert answers[".."] == answers["tiny.en/"]
        # What a user reads: the ids to use instead.
        code, message = answers["/etc"]
        assert code == 400 and "is a path" in message and "whisper-1" in message
        code, message = answers[".."]
        assert code == 404 and "not served here" in message and "tiny.en" in message
        assert "control characters" in answers["bad\x07name"][1]
        # Nothing was even tried: no load failed, none happened.
        assert _loads(after, "error") == _loads(before, "error")
        assert _loads(after, "ok") == _loads(before, "ok")
        _assert_heard(_transcribe(http, speech, "whisper-1"))


def test_a_5000_character_model_id_is_a_clean_400(server: LiveServer, speech: Speech) -> None:
    huge = "m" * 5000
    with server.client() as http:
        resp = _transcribe(http, speech, huge)
        assert resp.status_code == 400, resp.text
        assert "5000 characters" in resp.json()["error"]["message"]
        for method, path in (("GET", "/v1/models/"), ("POST", "/api/ps/"), ("DELETE", "/api/ps/")):
            answer = http.request(method, path + huge)
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["code"] == "invalid_value"
        # Longer than any file name, shorter than the limit: simply not served.
        resp = _transcribe(http, speech, "n" * 300)
        assert resp.status_code == 404, resp.text
        assert http.get("/v1/models/" + "n" * 300).status_code == 404
        _assert_heard(_transcribe(http, speech, "tiny.en"))


def test_a_live_session_naming_a_directory_ends_with_the_reason(
    server: LiveServer, speech: Speech, tmp_path: Path
) -> None:
    pcm = _pcm16k(speech.command_wav, tmp_path / "command.pcm").read_bytes()
    url = server.url.replace("http://", "ws://") + "/v1/audio/stream"

    async def session() -> tuple[list[dict], int | None]:
        events = []
        async with websockets.connect(url, open_timeout=30) as ws:
            start = {"type": "start", "model": "/etc", "mode": "auto_end"}
            await ws.send(json.dumps(start))
            for i in range(0, len(pcm), 6400):
                await ws.send(pcm[i : i + 6400])
            await ws.send(json.dumps({"type": "stop"}))
            try:
                while True:
                    events.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
            except websockets.ConnectionClosed:
                pass
            return events, ws.close_code

    events, code = asyncio.run(session())
    errors = [e for e in events if e["type"] == "error"]
    assert errors, events
    assert "is a path" in errors[-1]["message"]
    assert code is not None and code != 1011
    assert not [e for e in events if e["type"] == "final"]
    with server.client() as http:
        _assert_heard(_transcribe(http, speech, "whisper-1"))


@pytest.fixture(scope="module")
def trusting_server(models_dir: Path) -> Iterator[LiveServer]:
    """The operator lets trusted clients name directories (`client_models: any`)."""
    with serving_tiny(models_dir, cpu_threads=2, client_models="any") as live:
        yield live


def test_one_model_is_loaded_once_however_its_directory_is_spelled(
    trusting_server: LiveServer, speech: Speech, models_dir: Path
) -> None:
    base = str(models_dir / "base")
    spellings = [
        "base",
        base,
        base + "/",
        base + "//",
        base + "/.",
        base.replace("/base", "//base//"),
        str(models_dir / ".." / models_dir.name / "base"),
        "Systran/faster-whisper-base",  # the alias's hub repo: the same model
    ]
    with trusting_server.client() as http:
        for mid in spellings:
            _assert_heard(_transcribe(http, speech, mid))
        # The default, by path, is the default.
        _assert_heard(_transcribe(http, speech, str(models_dir / "tiny.en") + "/"))
        ps = http.get("/api/ps").json()["models"]
        metrics = http.get("/metrics").text
        # Paths are still checked: a directory without a model is a 404, not a load.
        etc = _transcribe(http, speech, "/etc")
        assert etc.status_code == 404 and "no CTranslate2 model" in etc.json()["error"]["message"]
    assert sorted(ps) == ["base", "tiny.en"]
    assert _count(metrics, "base") == 1
    assert _count(metrics, "tiny.en") == 1
    assert _loads(metrics, "error") == 0


def _hub_cache(models_dir: Path, dest: Path, repo: str, source: str) -> None:
    """`dest` as a hub-sourced install leaves it: `repo` downloaded in the hub cache layout."""
    root = dest / ("models--" + repo.replace("/", "--"))
    commit = "0" * 40
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)
    for f in (models_dir / source).iterdir():
        os.symlink(f, snapshot / f.name)


def test_clients_cannot_make_a_hub_sourced_install_download(
    models_dir: Path, speech: Speech, tmp_path: Path
) -> None:
    model_dir = tmp_path / "models"
    _hub_cache(models_dir, model_dir, "Systran/faster-whisper-base", "base")
    (model_dir / "tiny.en").symlink_to(models_dir / "tiny.en")
    hub = HubRecorder()
    try:
        server = start_process(
            model_dir, tmp_path / "local.log", HF_HUB_OFFLINE=None, HF_ENDPOINT=hub.url
        )
        try:
            with httpx.Client(base_url=server.url, timeout=120) as http:
                listed = [m["id"] for m in http.get("/v1/models").json()["data"]]
                for mid in ("someone/any-repo", "small", "Systran/faster-whisper-small"):
                    resp = _transcribe(http, speech, mid)
                    assert resp.status_code == 404, resp.text
                    assert "not served here" in resp.json()["error"]["message"]
                # What the install downloaded is served, from the cache, under one id.
                _assert_heard(_transcribe(http, speech, "base"))
                _assert_heard(_transcribe(http, speech, "Systran/faster-whisper-base"))
                ps = http.get("/api/ps").json()["models"]
                metrics = http.get("/metrics").text
        finally:
            server.stop()
        assert hub.paths == [], hub.paths  # the hub was never asked
        assert listed == ["whisper-1", "tiny.en", "base"]
        assert sorted(ps) == ["base", "tiny.en"]
        assert _count(metrics, "base") == 1

        # The operator may allow it (client_models hub): then the same request reaches the hub.
        server = start_process(
            model_dir,
            tmp_path / "hub.log",
            HF_HUB_OFFLINE=None,
            HF_ENDPOINT=hub.url,
            AISTACK_STT_CLIENT_MODELS="hub",
        )
        try:
            with httpx.Client(base_url=server.url, timeout=120) as http:
                resp = _transcribe(http, speech, "someone/any-repo")
                assert resp.status_code in (404, 503), resp.text
                _assert_heard(_transcribe(http, speech, "whisper-1"))
        finally:
            server.stop()
        assert any("someone/any-repo" in p for p in hub.paths), hub.paths
    finally:
        hub.close()
