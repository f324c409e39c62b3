"""The fresh host is created once per run and deleted after it (AISTACK_FRESH_KEEP=1 keeps
it for diagnosis); every step's output lands in tests/output/fresh-*.log."""

from __future__ import annotations

import pytest

from tests.helpers import nested_host as nested
from tests.helpers.checkout import ROOT

# Its own project and bridge (10.150.0.0/24, so the example's 10.100.10.0/24 inside it
# never meets a bridge of the outer host).
FRESH = nested.Site(project="f-fresh", bridge="br-f-fresh", gateway="10.150.0.1/24",
                    address="10.150.0.10", name="fresh")


@pytest.fixture(scope="module")
def fresh_host():
    log_dir = ROOT / "tests" / "output"
    log_dir.mkdir(parents=True, exist_ok=True)
    machine = nested.create(log_dir, FRESH)
    with nested.kept_for_diagnosis("AISTACK_FRESH_KEEP", lambda: nested.remove(FRESH)):
        yield machine
