"""Sharing a GPU with Ollama, tested without a GPU through the guard's seams.

The GPU is `NvmlReaderTestDouble` (a pretended card whose used memory follows what aistack-stt
and the Ollama test double really hold); Ollama is the Ollama test double driven by the real
HTTP client. The models are the real tiny.en and base weights, loaded on the CPU: the guard
decides the same way whatever device the manager builds the model for. On a lent GPU,
test_vram_gpu.py checks the real NVML path and bench/gpu_run.sh runs it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from aistack_stt.config import ConfigError, Settings, VramSettings, load_settings
from aistack_stt.errors import APIError
from aistack_stt.models import ModelManager
from aistack_stt.vram import HttpOllamaClient, NvmlReader, VramGuard, estimate, guard_for
from aistack_stt.vram.estimate import family
from stt_testkit import LiveServer, Speech, start_server, stop_server
from vram_doubles import NvmlReaderTestDouble, OllamaTestDouble, start_ollama_test_double

OWN_MIB = {"tiny.en": 700, "base": 800}  # what the pretended card shows per loaded model
OLLAMA_MIB = {"small:1b": 1500, "big:7b": 5000}
MARGIN = 256


@pytest.fixture
def ollama(tmp_path: Path) -> Iterator[OllamaTestDouble]:
    double = start_ollama_test_double(tmp_path / "ollama-models", OLLAMA_MIB)
    yield double
    double.stop()


def _settings(models_dir: Path, ollama_url: str) -> Settings:
    return Settings(
        model="tiny.en",
        model_dir=models_dir,
        device="cpu",
        cpu_threads=2,
        vram=VramSettings(ollama_url=ollama_url, margin_mb=MARGIN, wait_s=2),
    )


def _start(models_dir: Path, ollama: OllamaTestDouble, total_mib: int):
    settings = _settings(models_dir, ollama.url)
    gpu = NvmlReaderTestDouble(total_mib, OWN_MIB, ollama.url)
    guard = VramGuard(gpu, HttpOllamaClient(ollama.url), settings.vram, "int8")
    live = start_server(settings, load_default=False, vram=guard)
    gpu.attach(live.app.state.models)
    return live, gpu


def _need(model: str, first: bool) -> int:
    """What the guard asks for `model` on the CPU manager (int8), margin included, in MiB."""
    return estimate(model, None, "int8", max_batch=4, first_on_gpu=first).total_mib + MARGIN


def _metric(text: str, name: str, **labels: str) -> float | None:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(want) + r"\}" if want else "") + r" (\S+)"
    match = re.search(r"^" + pattern + r"$", text, re.M)
    return float(match.group(1)) if match else None


def _loaded(live: LiveServer) -> list[str]:
    with live.client() as http:
        return http.get("/api/ps").json()["models"]


def test_guard_loads_when_there_is_room_and_health_reports_each_tenant(
    models_dir: Path, ollama: OllamaTestDouble
) -> None:
    ollama.load("small:1b", "10m")
    live, _gpu = _start(models_dir, ollama, total_mib=8192)
    try:
        with live.client() as http:
            before = http.get("/health").json()["vram"]
            assert before["total_mib"] == 8192
            assert before["free_mib"] == 8192 - 1500
            assert before["tenants"]["ollama"]["models"] == {"small:1b": 1500}
            assert before["tenants"]["aistack-stt"]["mib"] == 0

            assert http.post("/api/ps/tiny.en").status_code == 201
            after = http.get("/health").json()["vram"]
            metrics = http.get("/metrics").text
    finally:
        stop_server(live)
    assert after["free_mib"] == 8192 - 1500 - 700
    own = after["tenants"]["aistack-stt"]
    assert own["models"] == {"tiny.en": _need("tiny.en", first=True) - MARGIN}
    assert own["mib"] == own["models"]["tiny.en"] and own["measured"] is False
    assert after["tenants"]["ollama"]["mib"] == 1500
    assert ollama.running() == {"small:1b": 1500}  # Ollama was left alone
    assert _metric(metrics, "aistack_stt_vram_used_bytes", tenant="ollama") == 1500 * 2**20
    assert _metric(metrics, "aistack_stt_vram_used_bytes", tenant="aistack-stt") == (
        own["mib"] * 2**20
    )
    assert _metric(metrics, "aistack_stt_vram_free_bytes", gpu=after["gpu"]) == 5992 * 2**20


def test_guard_frees_its_own_idle_models_before_asking_ollama(
    models_dir: Path, ollama: OllamaTestDouble
) -> None:
    ollama.load("small:1b", "10m")
    # base fits; tiny.en then lacks 100 MiB, which unloading base (800) covers.
    total = 1500 + 800 + _need("tiny.en", first=False) - 100
    live, _gpu = _start(models_dir, ollama, total_mib=total)
    try:
        with live.client() as http:
            assert http.post("/api/ps/base").status_code == 201
            assert http.post("/api/ps/tiny.en").status_code == 201
            metrics = http.get("/metrics").text
            health = http.get("/health").json()["vram"]
        assert _loaded(live) == ["tiny.en"]
    finally:
        stop_server(live)
    assert ollama.running() == {"small:1b": 1500}
    assert _metric(metrics, "aistack_stt_model_unloads_total", model="base", reason="vram") == 1
    assert _metric(metrics, "aistack_stt_vram_evictions_total", tenant="aistack-stt") == 1
    assert _metric(metrics, "aistack_stt_vram_evictions_total", tenant="ollama") is None
    assert list(health["tenants"]["aistack-stt"]["models"]) == ["tiny.en"]


def test_guard_frees_only_as_many_own_models_as_needed_least_recently_used_first(
    models_dir: Path, ollama: OllamaTestDouble, tmp_path: Path
) -> None:
    # A third model: tiny.en's files under another directory, loaded by path.
    other = tmp_path / "other-model"
    other.mkdir()
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"):
        (other / name).symlink_to(models_dir / "tiny.en" / name)
    own = {**OWN_MIB, str(other): 700}
    # Clients may name a directory only where the operator allows it.
    settings = replace(_settings(models_dir, ollama.url), client_models="any")
    need_other = estimate(str(other), other, "int8", max_batch=4, first_on_gpu=False)
    # tiny.en and base fit; the third lacks 100 MiB, which unloading tiny.en (700) covers.
    total = 700 + 800 + need_other.total_mib + MARGIN - 100
    gpu = NvmlReaderTestDouble(total, own, ollama.url)
    guard = VramGuard(gpu, HttpOllamaClient(ollama.url), settings.vram, "int8")
    live = start_server(settings, load_default=False, vram=guard)
    gpu.attach(live.app.state.models)
    try:
        with live.client() as http:
            assert http.post("/api/ps/tiny.en").status_code == 201
            assert http.post("/api/ps/base").status_code == 201  # used last
            assert http.post(f"/api/ps/{other}").status_code == 201
        assert sorted(_loaded(live)) == sorted(["base", str(other)])
    finally:
        stop_server(live)


def test_guard_asks_ollama_to_unload_its_least_recently_used_model_when_own_is_not_enough(
    models_dir: Path, ollama: OllamaTestDouble
) -> None:
    # After base (800) is unloaded, 200 MiB are still missing: small:1b (1500) covers it.
    total = 5000 + 1500 + 800 + _need("tiny.en", first=False) - 1000
    live, _gpu = _start(models_dir, ollama, total_mib=total)
    try:
        with live.client() as http:
            assert http.post("/api/ps/base").status_code == 201
            ollama.load("big:7b", "1h")
            ollama.load("small:1b", "10m")  # expires first: least recently used by its clock
            loaded = http.post("/api/ps/tiny.en")
            metrics = http.get("/metrics").text
            health = http.get("/health").json()["vram"]
    finally:
        stop_server(live)
    assert loaded.status_code == 201, loaded.text
    assert ollama.running() == {"big:7b": 5000}  # only as much as needed was asked for
    assert _metric(metrics, "aistack_stt_vram_evictions_total", tenant="aistack-stt") == 1
    assert _metric(metrics, "aistack_stt_vram_evictions_total", tenant="ollama") == 1
    assert health["tenants"]["ollama"]["models"] == {"big:7b": 5000}
    assert health["free_mib"] == total - 5000 - 700


def test_guard_refuses_with_503_naming_the_numbers_when_there_is_still_no_room(
    models_dir: Path, ollama: OllamaTestDouble, speech: Speech
) -> None:
    ollama.load("small:1b", "10m")
    total = _need("tiny.en", first=True) - 100  # too small even for tiny.en alone
    live, _gpu = _start(models_dir, ollama, total_mib=total)
    try:
        with live.client() as http:
            refused = http.post(
                "/v1/audio/transcriptions",
                data={"model": "tiny.en"},
                files={"file": ("command.wav", speech.command_wav.read_bytes(), "audio/wav")},
            )
            health = http.get("/health")
            metrics = http.get("/metrics").text
    finally:
        stop_server(live)
    assert refused.status_code == 503, refused.text
    error = refused.json()["error"]
    assert error["code"] == "insufficient_vram"
    message = error["message"]
    assert f"needs about {_need('tiny.en', first=True)} MiB" in message
    assert f"only {total} MiB of {total} MiB are free" in message
    assert "small:1b (1500 MiB)" in message and ollama.url in message
    assert ollama.running() == {}  # Ollama was asked, and let go
    assert health.status_code == 200  # the server keeps serving
    assert health.json()["vram"]["free_mib"] == total
    assert _metric(metrics, "aistack_stt_vram_refusals_total", model="tiny.en") == 1
    assert _metric(metrics, "aistack_stt_model_loads_total", model="tiny.en", outcome="error") == 1


def test_guard_says_when_ollama_cannot_be_asked(models_dir: Path, tmp_path: Path) -> None:
    url = "http://127.0.0.1:9"  # discard port: nothing answers HTTP there
    settings = _settings(models_dir, url)
    gpu = NvmlReaderTestDouble(400, OWN_MIB)
    manager = ModelManager(
        settings, vram=VramGuard(gpu, HttpOllamaClient(url, timeout=2), settings.vram, "int8")
    )
    gpu.attach(manager)
    try:
        with pytest.raises(APIError) as caught:
            manager.get("tiny.en")
        assert manager.loaded() == []
    finally:
        manager.close()
    assert caught.value.status == 503
    assert "Ollama could not be asked" in caught.value.message
    assert "http://127.0.0.1:9/api/ps" in caught.value.message


def test_a_gpu_that_cannot_be_read_does_not_stop_loads_and_health_says_why(
    models_dir: Path,
) -> None:
    # The real NVML reader, for a device no machine has: without nvidia-ml-py (here), without
    # a driver, or on a GPU machine, it cannot read.
    settings = _settings(models_dir, "")
    reader = NvmlReader(index=99)
    manager = ModelManager(settings, vram=VramGuard(reader, None, settings.vram, "int8"))
    try:
        with pytest.raises(APIError) as caught:
            reader.read()
        unreadable = caught.value.message
        manager.get("tiny.en")
        assert [m.id for m in manager.loaded()] == ["tiny.en"]
        assert manager.vram.health(manager) == {"error": unreadable}
    finally:
        manager.close()
    assert "nvidia-ml-py is not installed" in unreadable or "NVML says" in unreadable


def test_guard_is_only_built_on_cuda_with_the_guard_on() -> None:
    assert guard_for(Settings(), "cpu", "int8") is None
    off = Settings(vram=VramSettings(guard=False))
    assert guard_for(off, "cuda", "float16") is None
    on = guard_for(
        replace(off, vram=VramSettings(ollama_url="http://127.0.0.1:11434")), "cuda", "float16"
    )
    assert on is not None and on.ollama is not None and on.ollama.url == "http://127.0.0.1:11434"


def test_vram_settings_come_from_the_environment_and_bad_urls_are_named() -> None:
    settings = load_settings(
        environ={
            "AISTACK_STT_VRAM_OLLAMA_URL": "http://10.0.0.5:11434",
            "AISTACK_STT_VRAM_MARGIN_MB": "1024",
            "AISTACK_STT_VRAM_GUARD": "false",
        }
    )
    assert settings.vram == VramSettings(
        guard=False, ollama_url="http://10.0.0.5:11434", margin_mb=1024
    )
    with pytest.raises(ConfigError, match="vram ollama_url 'ollama:11434' is not an http"):
        load_settings(environ={"AISTACK_STT_VRAM_OLLAMA_URL": "ollama:11434"})


def test_estimates_follow_the_table_and_fall_back_to_the_size_of_model_bin(
    models_dir: Path, tmp_path: Path
) -> None:
    assert family("Systran/faster-whisper-large-v3") == "large-v3"
    assert family("tiny.en") == "tiny"
    assert family("deepdml/faster-whisper-large-v3-turbo-ct2") == "large-v3-turbo"
    large = estimate("large-v3", None, "float16", max_batch=1)
    # faster-whisper publishes 4525 MB for large-v2 in float16 with beam 5 on a GPU.
    assert 4200 <= large.total_mib <= 4700
    assert estimate("large-v3", None, "int8_float16").total_mib < large.total_mib + 700
    assert estimate("base", None, "float16", first_on_gpu=False).context_mib == 0
    # A directory outside the table: sized from model.bin (float16, 2 bytes per parameter).
    unnamed = tmp_path / "my-model"
    unnamed.mkdir()
    (unnamed / "model.bin").symlink_to(models_dir / "base" / "model.bin")
    from_file = estimate(str(unnamed), unnamed, "float16")
    table = estimate("base", None, "float16")
    assert from_file.basis.startswith("model.bin")
    assert abs(from_file.weights_mib - table.weights_mib) < 10


def test_the_readme_table_of_gpu_needs_is_the_estimate() -> None:
    from aistack_stt.vram import markdown_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    start = readme.index("<!-- vram table -->") + len("<!-- vram table -->")
    end = readme.index("<!-- end of vram table -->")
    assert readme[start:end].strip() == markdown_table(), (
        "stt/README.md's GPU memory table differs from vram/estimate.py; paste the output of "
        "python -c 'from aistack_stt.vram import markdown_table; print(markdown_table())'"
    )
