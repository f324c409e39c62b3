"""The fresh host is created once per run and deleted after it (AISTACK_FRESH_KEEP=1 keeps
it for diagnosis); every step's output lands in tests/output/fresh-*.log."""

from __future__ import annotations

import os

import pytest

from tests.fresh_host import host as fresh
from tests.helpers.checkout import ROOT


@pytest.fixture(scope="module")
def fresh_host():
    log_dir = ROOT / "tests" / "output"
    log_dir.mkdir(parents=True, exist_ok=True)
    machine = fresh.create(log_dir)
    try:
        yield machine
    finally:
        if os.environ.get("AISTACK_FRESH_KEEP") != "1":
            fresh.remove()
