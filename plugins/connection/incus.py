# Copyright (c) 2026, the aistack authors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""community.general.incus, plus a retry of the `incus exec` glitches a task cannot survive.

Under load (2-core hosts, nested Incus hosts) `incus exec` now and then exits 0 without
handing back what the command printed. For most commands the task then fails or retries on
its own terms; for the command that makes a task's temporary directory it is fatal: Ansible
parses the directory's path from that output and stops the play with "failed to resolve
remote temporary directory from ansible-tmp-...: ... returned empty string". That command is
safe to run again: its directory name is new for every task (time, PID, a 48-bit random
number), so if the lost run did create it, only that run could have. The retry asks with
`mkdir -p` for that last directory, so it succeeds whether the lost run got there or not,
and prints the path Ansible is waiting for. The other glitch: a pipelined module's standard
input arrives cut, and Python stops with a SyntaxError before running any of it; it is sent
again. Nothing else is retried: a module's own command is not known to be safe to run twice.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: incus
short_description: Run tasks in Incus instances with the incus CLI, surviving lost exec output
description:
  - The C(community.general.incus) connection (the same options and variables, the C(incus)
    command line), with one addition.
  - When C(incus exec) exits 0 without returning the output of the command that creates a
    task's temporary directory, that command is run again (with C(mkdir -p) for the directory,
    whose name is unique to the task), up to three times, instead of failing the task with
    "failed to resolve remote temporary directory".
  - When a module sent on standard input (pipelining) arrives cut, so that Python stops with a
    SyntaxError before running any of it, the module is sent again, up to three times.
  - Every other command behaves as in C(community.general.incus).
author: aistack authors
options:
  remote_addr:
    description: The instance to run in (the leading part of the name up to its first dot).
    type: string
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_incus_host
  executable:
    description: The shell that runs each command inside the instance.
    type: string
    default: /bin/sh
    vars:
      - name: ansible_executable
      - name: ansible_incus_executable
  incus_become_method:
    description: How to switch to O(remote_user) when it is not root.
    type: string
    default: /bin/su
    vars:
      - name: incus_become_method
  remote:
    description: The Incus remote the instance lives on (see C(incus remote list)).
    type: string
    default: local
    vars:
      - name: ansible_incus_remote
  remote_user:
    description: The user commands run as inside the instance.
    type: string
    default: root
    vars:
      - name: ansible_user
    env:
      - name: ANSIBLE_REMOTE_USER
    ini:
      - section: defaults
        key: remote_user
    keyword:
      - name: remote_user
  project:
    description: The Incus project of the instance.
    type: string
    default: default
    vars:
      - name: ansible_incus_project
"""

import re  # noqa: E402 (Ansible reads DOCUMENTATION first)

from ansible_collections.community.general.plugins.connection.incus import (  # noqa: E402
    Connection as IncusConnection,
)

# How many times the temporary directory's command is asked again after a lost answer.
TMPDIR_RETRIES = 3

# The command Ansible's POSIX shells build to make a task's temporary directory:
#   ( umask 77 && mkdir -p "` echo BASE `"&& mkdir "` echo BASE/NAME `" && echo NAME="` ... `" )
# NAME is ansible-tmp-<time>-<pid>-<random>. The match ends on the "&& mkdir " of NAME.
_TMPDIR_MKDIR = re.compile(
    r'&& mkdir (?="` echo \S*?(ansible-tmp-[0-9.]+-[0-9]+-[0-9]+) `" && echo \1=)'
)


def makes_tmpdir(cmd: str) -> bool:
    """Whether `cmd` is the command that creates a task's temporary directory."""
    return _TMPDIR_MKDIR.search(cmd) is not None


def output_was_lost(cmd: str, returncode: int, stdout: str) -> bool:
    """The glitch: the temporary directory's command exited 0 and printed nothing, which it
    cannot do (its last step echoes the path)."""
    return returncode == 0 and not stdout.strip() and makes_tmpdir(cmd)


def tmpdir_retry(cmd: str) -> str:
    """The same command, safe to run after a run whose answer was lost: the task's own
    directory is made with `mkdir -p`, so it succeeds if the lost run made it already."""
    return _TMPDIR_MKDIR.sub("&& mkdir -p ", cmd, count=1)


def run_with_tmpdir_retry(run, cmd, warn):
    """`run(cmd)` (returning returncode, stdout, stderr); when the temporary directory's
    answer was lost, `warn` and run its safe form again, up to TMPDIR_RETRIES times."""
    result = run(cmd)
    for attempt in range(1, TMPDIR_RETRIES + 1):
        if not isinstance(cmd, str) or not output_was_lost(cmd, result[0], result[1]):
            break
        warn(
            "incus exec returned no output for the task's temporary directory (an Incus "
            f"glitch under load); asking again ({attempt} of {TMPDIR_RETRIES})"
        )
        result = run(tmpdir_retry(cmd))
    return result


# Python's complaint about a program read from standard input that it could not compile:
#   File "<stdin>", line 274 ... SyntaxError: unterminated string literal
_STDIN_SYNTAX_ERROR = re.compile(
    r'File "<stdin>", line \d+.*^SyntaxError: ', re.DOTALL | re.MULTILINE
)


def input_was_cut(in_data, returncode: int, stderr: str) -> bool:
    """The other glitch: `incus exec` handed a pipelined module (Python on standard input) only
    part of it, so Python stopped with a SyntaxError before running a single statement (it
    compiles the whole program first). Running the module again is then safe: it never ran."""
    return bool(in_data) and returncode != 0 and _STDIN_SYNTAX_ERROR.search(stderr) is not None


def run_with_input_retry(run, in_data, warn):
    """`run()` (returning returncode, stdout, stderr); when the module sent on standard input
    arrived cut, `warn` and run it again, up to TMPDIR_RETRIES times."""
    result = run()
    for attempt in range(1, TMPDIR_RETRIES + 1):
        if not input_was_cut(in_data, result[0], result[2]):
            break
        warn(
            "incus exec delivered only part of the module (Python found it cut short and ran "
            f"none of it: an Incus glitch under load); sending it again ({attempt} of "
            f"{TMPDIR_RETRIES})"
        )
        result = run()
    return result


class Connection(IncusConnection):
    """community.general.incus with the temporary directory's lost answer asked again, and a
    module that arrived cut sent again."""

    def exec_command(self, cmd, in_data=None, sudoable=True):
        parent = super()

        def warn(message: str) -> None:
            self._display.warning(f"{self._instance()}: {message}")

        return run_with_input_retry(
            lambda: run_with_tmpdir_retry(
                lambda command: parent.exec_command(command, in_data=in_data, sudoable=sudoable),
                cmd,
                warn,
            ),
            in_data,
            warn,
        )
