"""The README's `make apply` on a host that has never seen the project.

A nested system container with systemd as PID 1 plays a newly installed Debian 12 host
(see host.py for what it receives and why it is privileged). Inside it, `make apply`
creates the venv, installs Incus from bookworm-backports, starts it under systemd, builds
the local image, brings up the example stack and prints the summary; then, from inside
that host, the STT service transcribes a spoken sentence and Open WebUI answers /health.

The tests run in file order and share one host, as a user's steps would.
"""

from __future__ import annotations

import base64
import difflib
import json
import time

import pytest

from tests.fresh_host import host as fresh
from tests.helpers.checkout import ROOT
from tests.helpers.speech import synthesize_wav

pytestmark = pytest.mark.fresh_host

AI_IP, WEB_IP = "10.100.10.10", "10.100.10.20"
SENTENCE = "please turn on the kitchen lights"

# A multipart POST with Python's standard library: the fresh host has no curl.
TRANSCRIBE = r"""
import json, sys, urllib.request, uuid
audio = open("/root/command.wav", "rb").read()
b = uuid.uuid4().hex
body = (f"--{b}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
        f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.wav\"\r\n"
        f"Content-Type: audio/wav\r\n\r\n").encode() + audio + f"\r\n--{b}--\r\n".encode()
# The key make apply generated (closed by default); the lookup file may carry a salt after it.
key = open(sys.argv[2]).read().split()[0]
req = urllib.request.Request(sys.argv[1], data=body,
                             headers={"Content-Type": f"multipart/form-data; boundary={b}",
                                      "Authorization": f"Bearer {key}"})
print(urllib.request.urlopen(req, timeout=300).read().decode())
"""
GET = r"""
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=30) as r:
    print(r.status, r.read().decode())
"""


def _words(text: str) -> list[str]:
    return "".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text).split()


def _py(script: str) -> str:
    """A shell word that runs `script` with python3 (base64: no quoting to get wrong)."""
    encoded = base64.b64encode(script.encode()).decode()
    return f"python3 -c \"$(echo {encoded} | base64 -d)\""


def _task_result(output: str, task: str) -> str:
    """The first result line ("ok: [localhost]", "skipping: ...") after a task's header."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("TASK [") and task in line)
    return next(line for line in lines[start + 1:] if line.strip())


@pytest.fixture(scope="module")
def prepared(fresh_host):
    """What a new user's host has before the README: the CA trust, the README's tools."""
    fresh.trust_host_cas(fresh_host)
    fresh.install_new_user_tools(fresh_host)
    return fresh_host


@pytest.fixture(scope="module")
def applied(prepared):
    """The repository as `git archive HEAD`, then the README's `make apply`."""
    fresh_host = prepared
    fresh.copy_repository(fresh_host, ROOT)
    # Ollama cannot be downloaded here: the test double's archive (real layout), built
    # inside the host from the copied repository, goes to the role as an extra-vars file.
    built = fresh_host.run(
        f"cd {fresh.CHECKOUT} && python3 tests/fixtures/ollama-test-double/build-archive"
        f" --output-dir {fresh.CHECKOUT}/.e2e"
    )
    archive = json.loads(built.stdout)
    fresh_host.push(
        (f"ollama_server_archive_path: {archive['path']}\n"
         f"ollama_server_archive_sha256: {archive['sha256']}\n"
         f"ollama_server_version: {archive['version']}\n").encode(),
        f"{fresh.CHECKOUT}/.e2e/ollama-test-double.yml",
    )
    started = time.monotonic()
    result = fresh_host.run(
        f"cd {fresh.CHECKOUT} && make apply ARGS='-e @.e2e/ollama-test-double.yml'",
        timeout=3600, log="fresh-make-apply.log", check=False,
    )
    seconds = time.monotonic() - started
    note = f"make apply in the fresh host: exit {result.returncode} after {seconds:.0f} s"
    with (fresh_host.log_dir / "fresh-make-apply.log").open("a") as log:
        log.write(f"\n{note}\n")
    print(note)
    return result


def test_the_fresh_host_has_python3_apt_and_no_backports_lists(prepared):
    """The conditions under which the Incus install once failed: python3-apt present and
    apt knowing nothing of bookworm-backports yet."""
    fresh_host = prepared
    fresh_host.run("python3 -c 'import apt_pkg'")
    lists = fresh_host.run("ls /var/lib/apt/lists/ /etc/apt/sources.list.d/").stdout
    assert "backports" not in lists, lists
    assert fresh_host.run("test -d /run/systemd/system", check=False).returncode == 0
    assert fresh_host.run("command -v incus", check=False).returncode != 0


def test_make_apply_brings_up_the_stack_and_prints_the_summary(applied):
    out = applied.stdout
    assert applied.returncode == 0, out[-6000:]
    assert "http://10.100.10.20:8080" in out
    assert "http://10.100.10.10:8000/v1" in out
    summary = [line for line in out.splitlines() if "healthy" in line]
    assert any("Open WebUI" in line for line in summary), summary
    assert any("Speech-to-text" in line for line in summary), summary
    assert any("Ollama" in line for line in summary), summary
    # The HTTPS front door is on by default: its line must say it answers too.
    assert any("Front door" in line and "https://" in line for line in summary), summary
    assert "NOT ANSWERING" not in out


def test_incus_comes_from_backports_and_runs_under_systemd(applied, fresh_host):
    assert applied.returncode == 0
    policy = fresh_host.run("apt-cache policy incus").stdout
    installed = policy.split("Installed:")[1].split()[0]
    assert "bpo" in installed, policy
    assert fresh_host.run("systemctl is-active incus.service").stdout.strip() == "active"
    # incusd is the service's process (not one started beside systemd by setsid).
    pid = fresh_host.run("systemctl show -p MainPID --value incus.service").stdout.strip()
    assert pid != "0"
    cgroup = fresh_host.run(f"cat /proc/{pid}/cgroup").stdout
    assert "incus.service" in cgroup, cgroup
    out = applied.stdout
    assert _task_result(out, "Start Incus with systemd").startswith(("ok:", "changed:"))
    assert _task_result(out, "Start incusd directly (no systemd here)").startswith("skipping:")
    images = fresh_host.run("incus image alias list --project default --format json").stdout
    assert "aistack/debian-12" in [a["name"] for a in json.loads(images)]


def test_stt_transcribes_a_spoken_sentence_from_inside_the_host(applied, fresh_host):
    assert applied.returncode == 0
    fresh_host.push(synthesize_wav(SENTENCE), "/root/command.wav")
    out = fresh_host.run(
        f"{_py(TRANSCRIBE)} http://{AI_IP}:8000/v1/audio/transcriptions "
        f"{fresh.CHECKOUT}/.aistack/secrets/stt_api_key-ai",
        timeout=300,
    ).stdout
    heard = _words(json.loads(out)["text"])
    # The example runs the CPU default, the multilingual base model, which may hear
    # espeak-ng's "lights" as "light" (tests/e2e checks tiny.en word for word). Allow
    # one word in six to differ; a wrong or empty transcript still fails.
    matched = difflib.SequenceMatcher(a=heard, b=_words(SENTENCE)).ratio()
    assert matched >= 0.8, f"heard {heard!r} for {SENTENCE!r}"
    assert {"kitchen", "turn"} <= set(heard), heard


def test_open_webui_health_answers_from_inside_the_host(applied, fresh_host):
    assert applied.returncode == 0
    out = fresh_host.run(f"{_py(GET)} http://{WEB_IP}:8080/health").stdout
    status, body = out.split(" ", 1)
    assert status == "200", out
    assert json.loads(body) == {"status": True}
