"""Restart the Incus daemon of this host the way the host runs it, with every other Incus
test paused.

On a systemd host incusd is `incus.service`: `systemctl restart incus`. Where PID 1 is not
systemd (these test machines, `.ci/run`), the incus_host role starts incusd directly,
detached (`setsid -f /usr/libexec/incus/incusd --group ... --logfile ...`); here it is
stopped with SIGTERM (Incus's "temporary stop": the instances keep running, only the
daemon's connections close) and started again with the same command line it ran with. In
both cases `incus admin waitready` says when the daemon answers.

Every test that talks to Incus shares the one daemon, so the restart waits until no other
Incus-backed part runs: scripts/run-tests holds /tmp/aistack-incusd.lock shared around each
of them, and a hand-run part holds its own /tmp/aistack-incus-<part>.lock (or the fresh,
remote and cluster locks). The restart takes all of them exclusively, per-part locks first
and the shared one last, the order in which the others take them.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

SHARED_LOCK = Path("/tmp/aistack-incusd.lock")
OWN_LOCK = Path("/tmp/aistack-incus-faults.lock")
NESTED_LOCKS = [Path(f"/tmp/aistack-{name}.lock") for name in ("fresh", "remote", "cluster")]
# How long the restart waits for the other Incus tests to end before it gives up.
PAUSE_LIMIT_S = 3600
READY_LIMIT_S = 120


def _part_locks() -> list[Path]:
    found = set(Path("/tmp").glob("aistack-incus-*.lock")) | set(NESTED_LOCKS)
    return sorted(found - {OWN_LOCK})


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def other_incus_tests_paused(limit_s: float = PAUSE_LIMIT_S) -> Iterator[None]:
    """Hold every Incus test's lock exclusively; AssertionError after limit_s."""

    def _expired(signum, frame):  # noqa: ARG001 (signal handler signature)
        raise _Timeout

    held: list[int] = []
    previous = signal.signal(signal.SIGALRM, _expired)
    signal.alarm(int(limit_s))
    waiting = None
    try:
        for path in [*_part_locks(), SHARED_LOCK]:
            waiting = path
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            held.append(fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
        signal.alarm(0)
        yield
    except _Timeout:
        raise AssertionError(
            f"another Incus test held {waiting} for {limit_s:.0f} s; incusd was not restarted"
        ) from None
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        for fd in reversed(held):
            os.close(fd)  # closing the descriptor releases its lock


def systemd_runs_this_host() -> bool:
    """sd_booted(): the directory exists only when systemd is PID 1."""
    return Path("/run/systemd/system").is_dir()


def server_pid() -> int:
    out = subprocess.run(
        ["incus", "query", "/1.0"], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return int(json.loads(out)["environment"]["server_pid"])


def _wait_gone(pid: int, limit_s: float) -> None:
    started = time.monotonic()
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() - started < limit_s, f"incusd {pid} did not exit on SIGTERM"
        time.sleep(0.2)  # waiting on a process that is not our child: nothing to wait on


def _restart_direct() -> None:
    pid = server_pid()
    argv = [a.decode() for a in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if a]
    assert Path(argv[0]).name == "incusd", argv
    os.kill(pid, signal.SIGTERM)
    _wait_gone(pid, READY_LIMIT_S)
    logfile = argv[argv.index("--logfile") + 1] if "--logfile" in argv else os.devnull
    with open(logfile, "ab") as log:
        subprocess.run(
            ["setsid", "-f", *argv], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
            check=True, timeout=60,
        )  # fmt: skip


def restart_incusd() -> None:
    """Restart the daemon; return once `incus admin waitready` says it answers."""
    if systemd_runs_this_host():
        subprocess.run(["systemctl", "restart", "incus.service"], check=True, timeout=300)
    else:
        _restart_direct()
    subprocess.run(
        ["incus", "admin", "waitready", "--timeout", str(READY_LIMIT_S)],
        check=True, timeout=READY_LIMIT_S + 30,
    )  # fmt: skip
