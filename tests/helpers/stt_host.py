"""A real aistack-stt running on the Incus host, for tests of the machines that call it.

Tests of the open_webui role need a speech-to-text service that a container can reach. This
starts the project's own `aistack-stt serve` from the controller's virtual environment, bound to
the test bridge's gateway address, with the real tiny.en weights from scripts/fetch-test-models.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import stt_server

ROOT = Path(__file__).resolve().parents[2]
TINY_EN = ROOT / ".cache" / "models" / "tiny.en"


class STTUnavailable(RuntimeError):
    """aistack-stt could not be started; the message says what is missing."""


@contextlib.contextmanager
def running_stt(host: str, port: int = 8000, model: Path = TINY_EN,
                timeout: float = 120.0) -> Iterator[str]:
    """Run aistack-stt on host:port until the block ends, ready by the one rule of
    tests/helpers/stt_server.py; yields its base URL (no /v1)."""
    try:
        import aistack_stt  # noqa: F401 (installed by make setup)
    except ImportError:
        raise STTUnavailable(f"aistack-stt is not installed for {sys.executable}: "
                             "run `make setup`") from None
    if not (model / "model.bin").is_file():
        raise STTUnavailable(f"no Whisper weights in {model}: run scripts/fetch-test-models")
    log = ROOT / ".cache" / f"aistack-stt-{host}-{port}.log"
    settings = {"AISTACK_STT_MODEL": str(model), "AISTACK_STT_DEVICE": "cpu",
                "AISTACK_STT_LOG_LEVEL": "warning"}  # fmt: skip
    try:
        server = stt_server.start_process(settings, log=log, host=host, port=port,
                                          timeout=timeout)
    except stt_server.NotReady as exc:
        raise STTUnavailable(f"{exc}\n(log: {log})") from None
    try:
        yield server.url
    finally:
        server.stop(timeout=20)
