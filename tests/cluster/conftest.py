"""The two members are built once per run and deleted after it (AISTACK_CLUSTER_KEEP=1
keeps them for diagnosis); every step's output lands in tests/output/cluster-*.log."""

from __future__ import annotations

import os

import pytest

from tests.cluster import members
from tests.helpers.checkout import ROOT


@pytest.fixture(scope="module")
def cluster_members():
    log_dir = ROOT / "tests" / "output"
    log_dir.mkdir(parents=True, exist_ok=True)
    built = members.create(log_dir)
    try:
        yield built
    finally:
        if os.environ.get("AISTACK_CLUSTER_KEEP") != "1":
            members.remove()
