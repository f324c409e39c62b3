"""Fixtures for the end-to-end run: a scratch copy of the checkout in which
`make apply` runs on the example infra.yml, exactly as a user would run it.
"""

from __future__ import annotations

import pytest

from tests.helpers.checkout import ROOT, Checkout, make_checkout


@pytest.fixture(scope="session")
def checkout() -> Checkout:
    """A fresh copy under .cache/e2e; kept after the run so its make-*.log files can be read."""
    return make_checkout(ROOT / ".cache" / "e2e" / "aistack")
