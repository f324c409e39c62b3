"""The remote Incus server is created once per run and deleted after it (AISTACK_REMOTE_KEEP=1
keeps it for diagnosis); the installation's output lands in tests/output/remote-*.log."""

from __future__ import annotations

import pytest

from tests.helpers import nested_host as nested
from tests.helpers.checkout import ROOT
from tests.remote import server as remote


@pytest.fixture(scope="module")
def remote_server():
    log_dir = ROOT / "tests" / "output"
    log_dir.mkdir(parents=True, exist_ok=True)
    machine = nested.create(log_dir, remote.SITE)
    with nested.kept_for_diagnosis("AISTACK_REMOTE_KEEP", lambda: nested.remove(remote.SITE)):
        remote.install_incus(machine)
        yield machine
