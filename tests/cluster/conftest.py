"""The two members are built once per run and deleted after it (AISTACK_CLUSTER_KEEP=1
keeps them for diagnosis); every step's output lands in tests/output/cluster-*.log."""

from __future__ import annotations

import pytest

from tests.cluster import members
from tests.helpers import nested_host as nested
from tests.helpers.checkout import ROOT


@pytest.fixture(scope="module")
def cluster_members():
    log_dir = ROOT / "tests" / "output"
    log_dir.mkdir(parents=True, exist_ok=True)
    built = members.create(log_dir)
    with nested.kept_for_diagnosis("AISTACK_CLUSTER_KEEP", members.remove):
        yield built
