"""A live aistack-stt server for the scheduling and streaming tests, tuned by environment.

The scheduler and stream sub-trees of the settings are read from AISTACK_STT_* variables
(as the systemd unit sets them) by the one settings loader, so a test that needs, say, a
queue of two says so the way an operator would.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from aistack_stt.config import Settings, with_env
from stt_testkit import LiveServer, start_server, stop_server


def start(settings: Settings, env: Mapping[str, str] | None = None) -> LiveServer:
    return start_server(with_env(settings, env or {}))


def stop(server: LiveServer) -> None:
    stop_server(server)


@contextmanager
def serving(settings: Settings, **env: str) -> Iterator[LiveServer]:
    """`start` with the AISTACK_STT_* variables `env`, stopped when the block ends (a fixture
    yields inside it)."""
    server = start(settings, env)
    try:
        yield server
    finally:
        stop(server)
