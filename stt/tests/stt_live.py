"""A live aistack-stt server for the scheduling and streaming tests, tuned by environment.

The scheduler and stream limits are read from AISTACK_STT_* variables when the app is built
(as the systemd unit sets them), so a test that needs, say, a queue of two sets them here for
the duration of `create_app` only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextlib import contextmanager

from aistack_stt.config import Settings
from stt_testkit import LiveServer, start_server, stop_server


@contextmanager
def _environ(env: Mapping[str, str]):
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start(settings: Settings, env: Mapping[str, str] | None = None) -> LiveServer:
    with _environ(env or {}):
        return start_server(settings)


def stop(server: LiveServer) -> None:
    stop_server(server)
