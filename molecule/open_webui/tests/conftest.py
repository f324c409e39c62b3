"""Shared fixtures for the open_webui verify step: the repository's test helpers and a real STT."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.helpers.stt_host import running_stt  # noqa: E402
from tests.helpers.voice import OpenWebUI  # noqa: E402

GATEWAY = "10.204.0.1"
WEBUI_URL = "http://10.204.0.20:8080"


@pytest.fixture(scope="session")
def stt_url():
    """aistack-stt on the host at the bridge gateway: the inventory's open_webui_stt_base_url."""
    with running_stt(GATEWAY) as url:
        yield url


@pytest.fixture(scope="session")
def webui():
    client = OpenWebUI(WEBUI_URL)
    client.sign_in_as_admin()
    return client
