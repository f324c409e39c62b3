"""A pytest plugin that runs every selected test REPEAT times, as separate items.

For the timing-dependent tests, which must pass every time on a loaded 2-core machine:

    python3 -c 'while 1: pass' & HOG=$!
    PYTHONPATH=stt/tests REPEAT=20 .venv/bin/pytest -q -p repeat stt/tests/test_scheduler.py
    kill $HOG
"""

from __future__ import annotations

import os


def pytest_generate_tests(metafunc) -> None:
    n = int(os.environ.get("REPEAT", "1"))
    if n > 1:
        metafunc.fixturenames.append("repeat_step")
        metafunc.parametrize("repeat_step", range(n))
