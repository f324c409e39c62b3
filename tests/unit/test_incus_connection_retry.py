"""The collection's incus connection (plugins/connection/incus.py) asks again when `incus exec`
loses the answer of the command that makes a task's temporary directory, and sends a
pipelined module again when it arrived cut.

The glitches cannot be provoked on demand (they come with load), so these tests take the
command Ansible's own `sh` shell plugin builds, wrapped the way Ansible hands it to a
connection, and run it in a real /bin/sh (and a module in a real python3): once with its
answer thrown away or its input cut (what the glitches do), then through the retry. What is
not real here is only the losing or the cutting."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

import pytest
from ansible.plugins.loader import shell_loader

ROOT = Path(__file__).resolve().parents[2]
_spec = spec_from_file_location("aistack_incus_connection", ROOT / "plugins/connection/incus.py")
plugin = module_from_spec(_spec)
_spec.loader.exec_module(plugin)


def _ansible_tmpdir_command(basefile: str) -> str:
    """The command as the incus connection receives it: ActionBase._make_tmp_path's mkdtemp,
    with the `sleep 0` and the `/bin/sh -c` that _low_level_execute_command adds."""
    shell = shell_loader.get("sh")
    cmd = shell.mkdtemp(basefile=basefile, tmpdir="~/.ansible/tmp")
    return "/bin/sh -c " + shlex.quote(shell.append_command(cmd, "sleep 0"))


def _sh(home: Path):
    """Run a command the way the instance does (`/bin/sh -c CMD`), with `home` as ~."""

    def run(cmd: str) -> tuple[int, str, str]:
        done = subprocess.run(
            ["/bin/sh", "-c", cmd], capture_output=True, text=True, check=False,
            env={**os.environ, "HOME": str(home)},
        )  # fmt: skip
        return done.returncode, done.stdout, done.stderr

    return run


BASEFILE = "ansible-tmp-1765012345.67-4242-123456789012"


def test_only_a_lost_answer_of_the_tmpdir_command_counts_as_the_glitch() -> None:
    tmpdir = _ansible_tmpdir_command(BASEFILE)
    assert plugin.output_was_lost(tmpdir, 0, "")
    assert plugin.output_was_lost(tmpdir, 0, " \n")
    # An answer, or a real failure (Ansible reports it with its own message): not retried.
    assert not plugin.output_was_lost(tmpdir, 0, f"{BASEFILE}=/root/.ansible/tmp/{BASEFILE}\n")
    assert not plugin.output_was_lost(tmpdir, 1, "")
    # Other commands that may print nothing are never run again: a module may not be safe twice.
    for other in (
        "/bin/sh -c 'echo ~ && sleep 0'",
        "/bin/sh -c '/usr/bin/python3 && sleep 0'",
        f"/bin/sh -c 'rm -f -r /root/.ansible/tmp/{BASEFILE}/ > /dev/null 2>&1'",
    ):
        assert not plugin.output_was_lost(other, 0, ""), other


def test_the_retry_changes_only_the_mkdir_of_the_task_directory() -> None:
    tmpdir = _ansible_tmpdir_command(BASEFILE)
    retry = plugin.tmpdir_retry(tmpdir)
    assert retry.count("mkdir -p") == 2 and 'mkdir "`' not in retry.replace("mkdir -p", "")
    assert (
        retry.replace(
            f'&& mkdir -p "` echo ~/.ansible/tmp/{BASEFILE}',
            f'&& mkdir "` echo ~/.ansible/tmp/{BASEFILE}',
        )
        == tmpdir
    )


def test_a_lost_answer_is_asked_again_and_gives_the_directory_ansible_waits_for(
    tmp_path: Path,
) -> None:
    tmpdir = _ansible_tmpdir_command(BASEFILE)
    sh = _sh(tmp_path)
    sent: list[str] = []
    warnings: list[str] = []

    def glitching(cmd: str) -> tuple[int, str, str]:
        sent.append(cmd)
        returncode, stdout, stderr = sh(cmd)
        return (returncode, "", stderr) if len(sent) == 1 else (returncode, stdout, stderr)

    returncode, stdout, _ = plugin.run_with_tmpdir_retry(glitching, tmpdir, warnings.append)

    made = tmp_path / ".ansible" / "tmp" / BASEFILE
    assert returncode == 0
    # What ActionBase._make_tmp_path parses: NAME=<path>.
    assert stdout.strip() == f"{BASEFILE}={made}"
    assert made.is_dir() and made.stat().st_mode & 0o777 == 0o700
    assert len(sent) == 2 and sent[0] == tmpdir and sent[1] == plugin.tmpdir_retry(tmpdir)
    assert len(warnings) == 1 and "asking again (1 of 3)" in warnings[0]
    # Why the retry is not the same command: the lost run made the directory, and running
    # the original again fails on it.
    assert sh(tmpdir)[0] != 0


def test_an_answer_on_the_first_try_runs_the_command_once(tmp_path: Path) -> None:
    tmpdir = _ansible_tmpdir_command(BASEFILE)
    sh = _sh(tmp_path)
    sent: list[str] = []

    def recorded(cmd: str) -> tuple[int, str, str]:
        sent.append(cmd)
        return sh(cmd)

    returncode, stdout, _ = plugin.run_with_tmpdir_retry(recorded, tmpdir, pytest.fail)
    assert returncode == 0 and stdout.startswith(f"{BASEFILE}=")
    assert sent == [tmpdir]


def test_answers_lost_every_time_end_after_three_retries_with_the_empty_answer(
    tmp_path: Path,
) -> None:
    """Ansible then fails the task with its own message, as without the retry."""
    tmpdir = _ansible_tmpdir_command(BASEFILE)
    sh = _sh(tmp_path)
    sent: list[str] = []

    def always_lost(cmd: str) -> tuple[int, str, str]:
        sent.append(cmd)
        return sh(cmd)[0], "", ""

    warnings: list[str] = []
    assert plugin.run_with_tmpdir_retry(always_lost, tmpdir, warnings.append) == (0, "", "")
    assert len(sent) == 1 + plugin.TMPDIR_RETRIES == 4
    assert len(warnings) == 3


# A pipelined module, as the connection receives it: the command starts Python, the program
# comes on standard input. Like AnsiballZ, it keeps its payload in one long string literal.
MODULE = (
    "import json, os\n"
    f"payload = '{'A' * 4000}'\n"
    "with open(os.environ['RUNS'], 'a') as runs:\n"
    "    runs.write('ran\\n')\n"
    "print(json.dumps({'changed': False, 'size': len(payload)}))\n"
)


def _python(runs: Path):
    """Run a pipelined module the way the instance does; `cut` keeps that much of the input."""

    def run(data: str, cut: int | None = None) -> tuple[int, str, str]:
        done = subprocess.run(
            ["/bin/sh", "-c", "python3 && sleep 0"], input=data[:cut], capture_output=True,
            text=True, check=False, env={**os.environ, "RUNS": str(runs)},
        )  # fmt: skip
        return done.returncode, done.stdout, done.stderr

    return run


def test_a_module_that_arrived_cut_is_sent_again_and_runs_once(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    python = _python(runs)
    sent: list[int] = []
    warnings: list[str] = []

    def glitching() -> tuple[int, str, str]:
        sent.append(1)
        # The first delivery stops inside the payload's string, as the cluster run saw it.
        return python(MODULE, cut=len(MODULE) // 2 if len(sent) == 1 else None)

    returncode, stdout, _ = plugin.run_with_input_retry(glitching, MODULE, warnings.append)
    assert returncode == 0 and json.loads(stdout) == {"changed": False, "size": 4000}
    assert len(sent) == 2 and len(warnings) == 1 and "sending it again (1 of 3)" in warnings[0]
    # The cut delivery ran none of the module: its one side effect happened once.
    assert runs.read_text() == "ran\n"


def test_only_a_cut_module_counts_as_that_glitch(tmp_path: Path) -> None:
    python = _python(tmp_path / "runs")
    cut = python(MODULE, cut=len(MODULE) // 2)
    assert plugin.input_was_cut(MODULE, *cut[::2])
    # A module that ran and failed, a whole module, a command without input: never sent again.
    failed = python("import sys\nsys.exit('the module failed')\n")
    assert failed[0] != 0 and not plugin.input_was_cut("x", *failed[::2])
    assert not plugin.input_was_cut(MODULE, *python(MODULE)[::2])
    assert not plugin.input_was_cut(None, cut[0], cut[2])


def test_a_module_cut_every_time_ends_after_three_retries_with_pythons_error(
    tmp_path: Path,
) -> None:
    python = _python(tmp_path / "runs")
    sent: list[int] = []

    def always_cut() -> tuple[int, str, str]:
        sent.append(1)
        return python(MODULE, cut=100)

    warnings: list[str] = []
    returncode, _, stderr = plugin.run_with_input_retry(always_cut, MODULE, warnings.append)
    assert returncode != 0 and "SyntaxError" in stderr
    assert len(sent) == 1 + plugin.TMPDIR_RETRIES and len(warnings) == 3
    assert not (tmp_path / "runs").exists()
