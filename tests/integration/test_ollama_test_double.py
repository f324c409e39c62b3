"""The aistack Ollama test double that the ollama_server tests install.

It stands in for the real Ollama archive, which cannot be downloaded here, so
it must keep the real archive's layout, build to the same bytes every time
(the role pins archives by SHA-256) and answer what the role and Open WebUI ask.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

DOUBLE = Path(__file__).resolve().parents[1] / "fixtures" / "ollama-test-double"


def build(version: str, output_dir: Path) -> dict:
    result = subprocess.run(
        [
            sys.executable,
            str(DOUBLE / "build-archive"),
            "--version",
            version,
            "--output-dir",
            str(output_dir),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(result.stdout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`bin/ollama serve` from a built archive, as the systemd unit starts it."""
    root = tmp_path_factory.mktemp("double")
    archive = build("9.9.9-aistack-test-double", root / "dist")
    with tarfile.open(archive["path"]) as tar:
        tar.extractall(root / "install", filter="data")
    port = free_port()
    env = {**os.environ, "OLLAMA_HOST": f"127.0.0.1:{port}", "OLLAMA_MODELS": str(root / "models")}
    process = subprocess.Popen(
        [str(root / "install" / "bin" / "ollama"), "serve"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(base + "/api/version", timeout=1)
            break
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.1)
    yield {
        "base": base,
        "models": root / "models",
        "bin": root / "install" / "bin" / "ollama",
        "env": env,
    }
    process.terminate()
    process.wait(timeout=10)


def call(server, path: str, body: dict | None = None, method: str | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server["base"] + path, data=data, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        raw = response.read().decode()
    lines = [json.loads(line) for line in raw.splitlines() if line.strip()]
    return lines[0] if len(lines) == 1 else lines


def test_archive_has_the_real_layout_and_is_reproducible(tmp_path):
    first = build("1.2.3-aistack-test-double", tmp_path / "a")
    second = build("1.2.3-aistack-test-double", tmp_path / "b")
    other = build("1.2.4-aistack-test-double", tmp_path / "c")
    assert first["sha256"] == second["sha256"] != other["sha256"]
    assert hashlib.sha256(Path(first["path"]).read_bytes()).hexdigest() == first["sha256"]
    assert Path(first["path"]).name == "ollama-linux-amd64.tgz"
    with tarfile.open(first["path"]) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin/ollama"].mode & 0o111
    assert members["lib/ollama"].isdir()


def test_double_says_what_it_is(server):
    out = subprocess.run([server["bin"], "-v"], capture_output=True, text=True, check=True).stdout
    assert out.startswith("ollama version is 9.9.9-aistack-test-double")
    assert "test double (not Ollama)" in out
    assert call(server, "/api/version") == {"version": "9.9.9-aistack-test-double"}


def test_pull_streams_progress_and_records_the_model_in_ollama_models(server):
    events = call(server, "/api/pull", {"model": "llama3.2"})
    assert events[0] == {"status": "pulling manifest"}
    assert events[-1] == {"status": "success"}
    assert any(e.get("completed") == e.get("total") and "digest" in e for e in events)
    manifest = server["models"] / "manifests/registry.ollama.ai/library/llama3.2/latest"
    assert manifest.is_file()
    names = [m["name"] for m in call(server, "/api/tags")["models"]]
    assert "llama3.2:latest" in names
    assert "llama3.2:latest" in [m["id"] for m in call(server, "/v1/models")["data"]]


def test_unpullable_model_is_an_error(server):
    with pytest.raises(urllib.error.HTTPError) as failure:
        call(server, "/api/pull", {"model": "nonexistent-model", "stream": False})
    assert failure.value.code == 500
    assert "file does not exist" in json.loads(failure.value.read())["error"]


def test_chat_generate_and_embed_answer_for_a_pulled_model(server):
    call(server, "/api/pull", {"model": "qwen2.5:0.5b", "stream": False})
    chunks = call(
        server,
        "/api/chat",
        {"model": "qwen2.5:0.5b", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert chunks[-1]["done"] is True
    assert "".join(c["message"]["content"] for c in chunks).endswith("You said: hi")
    reply = call(
        server, "/api/generate", {"model": "qwen2.5:0.5b", "prompt": "ping", "stream": False}
    )
    assert reply["response"].endswith("You said: ping")
    vectors = call(server, "/api/embed", {"model": "qwen2.5:0.5b", "input": ["a", "b"]})[
        "embeddings"
    ]
    assert len(vectors) == 2 and vectors[0] != vectors[1]
    assert [m["name"] for m in call(server, "/api/ps")["models"]] == ["qwen2.5:0.5b"]
    show = call(server, "/api/show", {"model": "qwen2.5:0.5b"})
    assert "aistack Ollama test double" in show["modelfile"]


def test_unknown_model_is_404(server):
    with pytest.raises(urllib.error.HTTPError) as failure:
        call(server, "/api/chat", {"model": "never-pulled", "messages": []})
    assert failure.value.code == 404


def test_cli_lists_and_removes_models_through_ollama_host(server):
    subprocess.run(
        [server["bin"], "pull", "phi3"], env=server["env"], check=True, capture_output=True
    )
    listing = subprocess.run(
        [server["bin"], "list"], env=server["env"], capture_output=True, text=True
    ).stdout
    assert "phi3:latest" in listing
    subprocess.run(
        [server["bin"], "rm", "phi3"], env=server["env"], check=True, capture_output=True
    )
    assert "phi3:latest" not in [m["name"] for m in call(server, "/api/tags")["models"]]
