"""The product as a user meets it: `make apply` on the example infra.yml, from
nothing to a stack whose Open WebUI turns speech into text, then a no-change
re-run, a model switch through host_vars and `make destroy`.

A real Chromium on a LAN namespace (tests/helpers/lan_browser.py) reaches Open WebUI only
through the HTTPS front door, trusts the local CA the stack made, speaks into the microphone
and reads the words back from the chat input; on the plain-HTTP container address the same
browser gets no recording.

The tests run in file order and share one stack; each step depends on the one
before, as it would for a user following the README.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from tests.helpers import door_clients
from tests.helpers.checkout import ollama_test_double_vars
from tests.helpers.lan_browser import lan_namespace, speak_into_open_webui
from tests.helpers.read_aloud import read_answer_aloud
from tests.helpers.speech import synthesize_wav
from tests.helpers.voice import OpenWebUI

pytestmark = pytest.mark.e2e

PROJECT, BRIDGE = "lab", "br-lab"
AI_IP, WEB_IP = "10.100.10.10", "10.100.10.20"
STT_URL = f"http://{AI_IP}:8000"
WEBUI_URL = f"http://{WEB_IP}:8080"
SENTENCE = "please turn on the kitchen lights"
ADMIN_EMAIL = "admin@aistack.lan"
SCREENSHOTS = Path("/tmp/aistack-e2e-browser")
# The front_door role's defaults: requests in progress per client address, and the seconds a
# request header may take.
DOOR_PER_CLIENT, DOOR_HEADER_TIMEOUT_S = 64, 15
# The attack: one address opens 1 100 requests that are never finished.
HALF_SENT = 1100
CHAT_MODEL = "llama3.2:1b"  # the example's chat model; the Ollama test double "pulls" it
ASKED = "what is on the shopping list"


def _stt_key(checkout) -> str:
    """The key the stack made for the STT service, where the docs say it lives."""
    return (checkout.path / ".aistack" / "secrets" / "stt_api_key-ai").read_text().split()[0]


def _words(text: str) -> list[str]:
    return "".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text).split()


def _incus_state() -> dict[str, list[str]]:
    """What the example declares, as Incus has it. Other tests' projects and bridges
    (molecule scenarios run beside this test) are left out on purpose."""

    def names(*args: str) -> list[str]:
        out = subprocess.run(["incus", *args, "--format", "json"], capture_output=True,
                             text=True, check=True).stdout
        return sorted(item["name"] for item in json.loads(out))

    state = {
        "projects": [p for p in names("project", "list") if p == PROJECT],
        "networks": [n for n in names("network", "list") if n == BRIDGE],
    }
    if state["projects"]:
        state["instances"] = names("list", "--project", PROJECT)
        state["profiles"] = names("profile", "list", "--project", PROJECT)
    return state


def _door_url(output: str) -> str:
    """The front door's URL as the summary prints it."""
    match = re.search(r"^.*Front door\s+(https://\S+?)/?\s", output, flags=re.MULTILINE)
    assert match, "the summary prints no front door URL"
    return match.group(1)


def _admin(checkout) -> tuple[str, str]:
    password_file = checkout.path / ".aistack" / "open-webui-admin-web.password"
    assert password_file.stat().st_mode & 0o777 == 0o600
    return ADMIN_EMAIL, password_file.read_text().strip()


def _server_cert(checkout) -> x509.Certificate:
    pem = (checkout.path / ".aistack" / "front-door" / "server.crt").read_bytes()
    return x509.load_pem_x509_certificate(pem)


def _spoken_wav(tmp_path: Path) -> Path:
    """The sentence with silence around it, as the browser's microphone plays it."""
    raw, padded = tmp_path / "raw.wav", tmp_path / "microphone.wav"
    raw.write_bytes(synthesize_wav(SENTENCE))
    subprocess.run(["sox", str(raw), str(padded), "pad", "1", "3"], check=True)
    return padded


@pytest.fixture(scope="module")
def lan():
    """A LAN client's network: reaches the host through a veth, nothing else."""
    with lan_namespace() as namespace:
        yield namespace


@pytest.fixture(scope="module")
def other_lan():
    """A second LAN machine, on its own veth and /30."""
    with lan_namespace("aistack-door-lan2", "10.160.14.1", "10.160.14.2",
                       links=("vd2-host", "vd2-lan")) as namespace:
        yield namespace


def _door_log(address: str) -> list[str]:
    """The lines of the door's access log (in the Open WebUI machine) for a client address."""
    log = subprocess.run(
        ["incus", "exec", "--project", PROJECT, "web", "--", "cat", "/var/log/nginx/access.log"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [line for line in log.splitlines() if line.split(" ", 1)[0] == address]


@pytest.fixture(scope="module")
def stack(checkout):
    """`make apply` on the example, starting from a host without the stack."""
    if PROJECT in _incus_state()["projects"]:
        assert checkout.make("destroy", "FORCE=1").returncode == 0

    extra = ollama_test_double_vars(checkout)
    # The run starts on the English-only tiny.en model; the switch test moves to base.
    host_vars = checkout.path / "host_vars" / "ai.yml"
    host_vars.write_text(host_vars.read_text() + "stt_server_model: tiny.en\n")

    args = f"ARGS=-e @{extra}"
    result = checkout.make("apply", args)
    return {"checkout": checkout, "apply": result, "args": args, "host_vars": host_vars}


def test_make_apply_brings_up_the_stack_and_prints_its_urls(stack):
    result = stack["apply"]
    assert result.returncode == 0, result.output[-6000:]
    assert f"{WEBUI_URL}" in result.output
    assert f"{STT_URL}/v1" in result.output
    summary = [line for line in result.output.splitlines() if "healthy" in line]
    assert any("Open WebUI" in line for line in summary), summary
    assert any("Speech-to-text" in line and "tiny.en" in line for line in summary), summary
    assert any("Ollama" in line for line in summary), summary
    assert any("Front door" in line and "https://" in line for line in summary), summary
    assert any("Text-to-speech" in line and "en_US-joe-medium" in line for line in summary), summary
    # The example's optional chat model: the Ollama test double "pulls" it.
    assert "Models on ai: llama3.2:1b" in result.output
    assert "NOT ANSWERING" not in result.output
    ca = stack["checkout"].path / ".aistack" / "front-door" / "ca.crt"
    assert f"Trust this CA on your devices (docs/operations.md): {ca}" in result.output
    assert (ca.parent / "ca.key").stat().st_mode & 0o777 == 0o600
    assert "Open WebUI administrator on web: admin@aistack.lan, password in " in result.output
    assert _admin(stack["checkout"])[1] not in result.output


def test_the_administrator_exists_and_sign_ups_are_off(stack):
    url = _door_url(stack["apply"].output)
    ca = ssl.create_default_context(
        cafile=str(stack["checkout"].path / ".aistack" / "front-door" / "ca.crt")
    )
    email, password = _admin(stack["checkout"])
    signin = httpx.post(f"{url}/api/v1/auths/signin", json={"email": email, "password": password},
                        verify=ca, timeout=60)
    assert signin.status_code == 200 and signin.json()["role"] == "admin", signin.text
    stranger = httpx.post(
        f"{url}/api/v1/auths/signup",
        json={"name": "Stranger", "email": "stranger@lan.test", "password": "first-come-1"},
        verify=ca, timeout=60,
    )
    assert stranger.status_code == 403, stranger.text


def test_browser_on_the_lan_speaks_into_the_chat_input_through_the_door(stack, lan, tmp_path):
    url = _door_url(stack["apply"].output)
    ca = stack["checkout"].path / ".aistack" / "front-door" / "ca.crt"
    email, password = _admin(stack["checkout"])
    token = httpx.post(f"{url}/api/v1/auths/signin", json={"email": email, "password": password},
                       verify=ssl.create_default_context(cafile=str(ca)),
                       timeout=60).json()["token"]
    SCREENSHOTS.mkdir(exist_ok=True)
    attempt = speak_into_open_webui(
        url, token, _spoken_wav(tmp_path), SCREENSHOTS / "door-https.png",
        ca_file=ca, namespace=lan.name,
    )
    assert attempt.secure_context, "the front door's page is not a secure context"
    assert attempt.recording_started, f"no recording started over HTTPS; toasts: {attempt.toasts}"
    assert _words(attempt.chat_input) == _words(SENTENCE), (attempt.chat_input, attempt.toasts)


def test_browser_on_plain_http_gets_no_recording(stack, lan, tmp_path):
    """Browsers give the microphone only to secure contexts; if this ever changes, we hear."""
    email, password = _admin(stack["checkout"])
    token = httpx.post(f"{WEBUI_URL}/api/v1/auths/signin",
                       json={"email": email, "password": password}, timeout=60).json()["token"]
    SCREENSHOTS.mkdir(exist_ok=True)
    attempt = speak_into_open_webui(
        WEBUI_URL, token, _spoken_wav(tmp_path), SCREENSHOTS / "plain-http.png",
    )
    assert not attempt.secure_context
    assert not attempt.recording_started, "a plain-HTTP page got the microphone"
    assert attempt.chat_input == ""
    # What the user sees instead: the microphone refused, or (with a chat model, Open WebUI
    # 0.12 needing crypto.randomUUID, which exists only in secure contexts) no chat page at all.
    refused = any("Permission denied when accessing microphone" in t for t in attempt.toasts)
    assert refused or attempt.page_error == "500: Internal Error", (
        attempt.toasts,
        attempt.page_error,
    )


def test_the_door_sees_each_lan_machine_and_believes_no_forged_address(stack, lan, other_lan):
    """nginx takes the client from the proxy device's PROXY header: each LAN machine shows
    under its own address, and an X-Real-IP / X-Forwarded-For a client sends changes nothing."""
    url = _door_url(stack["apply"].output)
    ca = str(stack["checkout"].path / ".aistack" / "front-door" / "ca.crt")
    forged = {"X-Real-IP": "203.0.113.7", "X-Forwarded-For": "203.0.113.7"}
    for namespace, address in ((lan.name, lan.client_ip), (other_lan.name, other_lan.client_ip)):
        before = len(_door_log(address))
        status, body = door_clients.fetch(namespace, f"{url}/health?from={address}", ca, forged)
        assert status == 200 and json.loads(body) == {"status": True}, (status, body)
        lines = _door_log(address)
        assert len(lines) == before + 1 and f"/health?from={address} " in lines[-1], lines[-3:]
    assert _door_log("203.0.113.7") == []


def test_one_machine_at_its_request_cap_leaves_the_door_open_to_others(stack, lan, other_lan):
    """A machine holding its share of requests (uploads that never end) is refused more with
    429; another machine is served meanwhile, and the first again once it lets go."""
    url = _door_url(stack["apply"].output)
    ca = str(stack["checkout"].path / ".aistack" / "front-door" / "ca.crt")
    holder = door_clients.hold(lan.name, url, "body", DOOR_PER_CLIENT, ca)
    try:
        assert holder.held == DOOR_PER_CLIENT
        # The held requests count from the moment nginx has read their headers.
        refused = door_clients.wait_for_status(lan.name, f"{url}/health", ca, 429)
        assert refused, "the machine holding its share of requests was still served"
        status, body = door_clients.fetch(other_lan.name, f"{url}/health", ca)
        assert status == 200 and json.loads(body) == {"status": True}, (status, body)
        assert holder.open_now() == DOOR_PER_CLIENT
    finally:
        holder.release()
    assert door_clients.wait_for_status(lan.name, f"{url}/health", ca, 200)
    assert any('" 429 ' in line for line in _door_log(lan.client_ip))


def test_a_thousand_half_sent_requests_from_one_machine_shut_no_one_out(stack, lan, other_lan):
    """1 100 connections that never finish their handshake, from one address: another machine
    is served while every one of them is held, and nginx lets go of them after its header
    timeout."""
    url = _door_url(stack["apply"].output)
    ca = str(stack["checkout"].path / ".aistack" / "front-door" / "ca.crt")
    holder = door_clients.hold(lan.name, url, "half", HALF_SENT, ca)
    try:
        status, body = door_clients.fetch(other_lan.name, f"{url}/health", ca)
        still_held = holder.open_now()
        assert status == 200 and json.loads(body) == {"status": True}, (status, body)
        # Every half-sent request was still open when the other machine got its answer.
        assert still_held == HALF_SENT, still_held
        assert door_clients.wait_for_open(holder, 0, DOOR_HEADER_TIMEOUT_S + 60), (
            f"nginx still holds {holder.open_now()} half-sent requests long after "
            f"its {DOOR_HEADER_TIMEOUT_S} s header timeout"
        )
    finally:
        holder.release()


@pytest.fixture(scope="module")
def ha_lan():
    """Home Assistant's LAN (tests/helpers/wyoming_lan.py): a machine on the network infra.yml
    allows and one on another. Kept until the module ends: later applies validate the
    published address, which is the allowed network's host side."""
    from tests.helpers.wyoming_lan import lan_machines

    with lan_machines() as machines:
        yield machines


def test_home_assistant_on_the_lan_reaches_wyoming_through_the_published_address(
    stack, ha_lan, tmp_path
):
    """infra.yml's wyoming_lan switch, as a Home Assistant user meets it: the summary names
    the address, the real wyoming client on an allowed network transcribes through it, a
    client on another network gets nothing, the stack's own machines still reach Wyoming,
    and a zeroconf browser on the LAN finds the service at that address and port."""
    from tests.helpers import wyoming_lan as ha

    allowed, stranger = ha_lan
    port = 10300
    infra = stack["checkout"].path / "infra.yml"
    ha.switch_on(infra, allowed.host_ip, allowed.network, port, "web")
    for target in ("apply-infra", "apply-stt", "status"):
        result = stack["checkout"].make(target, stack["args"])
        assert result.returncode == 0, result.output[-6000:]
    lines = [line for line in result.output.splitlines() if "Wyoming (LAN)" in line]
    assert any(f"tcp://{allowed.host_ip}:{port}" in line and "healthy" in line for line in lines)

    wav = tmp_path / "command.wav"
    wav.write_bytes(synthesize_wav(SENTENCE))
    heard = ha.transcribe_from(allowed, allowed.host_ip, port, wav)
    assert _words(heard.get("text", "")) == _words(SENTENCE), heard

    # The bridge's ACL rejects it (a reset, seen as refused); were it let through, the server's
    # allow-list would close it at accept. Either way: no transcript, and no hanging.
    refused = ha.transcribe_from(stranger, allowed.host_ip, port, wav)
    assert refused.get("error", "").startswith(
        ("ConnectionRefusedError", "ConnectionResetError", "closed")
    ), f"a network infra.yml does not allow got {refused}"

    assert ha.describe_from_instance(PROJECT, "web", AI_IP, port) == "info"

    seen = ha.browse_from(allowed, 30, "aistack-stt")
    service = seen.get("aistack-stt._wyoming._tcp.local.")
    assert service == {"addresses": [allowed.host_ip], "port": port}, seen


def test_spoken_sentence_through_open_webui_comes_back_as_text(stack):
    webui = OpenWebUI(WEBUI_URL)
    email, password = _admin(stack["checkout"])
    webui.sign_in_as_admin(email=email, password=password)
    config = webui.audio_config()
    assert config["stt"]["ENGINE"] == "openai"
    assert config["stt"]["OPENAI_API_BASE_URL"] == f"{STT_URL}/v1"
    text = webui.transcribe(synthesize_wav(SENTENCE))
    assert _words(text) == _words(SENTENCE)


def test_open_webui_reads_aloud_through_the_voice_service(stack):
    """Read-aloud as Open WebUI's button calls it; the audio is heard back by the same stack."""
    webui = OpenWebUI(WEBUI_URL)
    email, password = _admin(stack["checkout"])
    webui.sign_in_as_admin(email=email, password=password)
    tts = webui.audio_config()["tts"]
    assert tts["ENGINE"] == "openai"
    assert tts["OPENAI_API_BASE_URL"] == f"{STT_URL}/v1"
    audio = webui.speak(SENTENCE)
    assert audio[:3] == b"ID3" or audio[:2] in (b"\xff\xf3", b"\xff\xfb"), audio[:16]
    assert _words(webui.transcribe(audio, "speech.mp3")) == _words(SENTENCE)


def test_browser_on_the_lan_reads_an_answer_aloud_through_the_door(stack, lan):
    """The speaker button under a chat answer: the page fetches each sentence's audio from
    the stack's voice and plays it to the end, as a user on the LAN hears it."""
    url = _door_url(stack["apply"].output)
    ca = stack["checkout"].path / ".aistack" / "front-door" / "ca.crt"
    email, password = _admin(stack["checkout"])
    verify = ssl.create_default_context(cafile=str(ca))
    token = httpx.post(f"{url}/api/v1/auths/signin", json={"email": email, "password": password},
                       verify=verify, timeout=60).json()["token"]
    models = httpx.get(f"{url}/api/models", headers={"Authorization": f"Bearer {token}"},
                       verify=verify, timeout=60).json()["data"]
    assert CHAT_MODEL in [m["id"] for m in models], models
    SCREENSHOTS.mkdir(exist_ok=True)
    heard = read_answer_aloud(url, token, ASKED, SCREENSHOTS / "read-aloud.png", CHAT_MODEL,
                              ca_file=ca, namespace=lan.name)
    # The Ollama test double answers by repeating what it was asked.
    assert heard.message.endswith(f"You said: {ASKED}"), (heard.message, heard.toasts)
    assert heard.calls, f"no speech request; toasts {heard.toasts}, console {heard.console_errors}"
    answers = [(c.status, c.content_type.split(";")[0]) for c in heard.calls]
    assert all(status == 200 and kind.startswith("audio/") for status, kind in answers), (
        answers, heard.toasts)
    assert all(c.size > 2000 for c in heard.calls), [c.size for c in heard.calls]
    assert _words(" ".join(c.input for c in heard.calls)) == _words(heard.message)
    assert [e for e in heard.media if e["type"] == "error"] == [], heard.media
    # Each answer's audio, one blob: URL per sentence, started playing and played to its end.
    ended = heard.played("ended")
    assert len({e["src"] for e in ended}) == len(ended) == len(heard.calls), heard.media
    assert {e["src"] for e in heard.played("playing")} == {e["src"] for e in ended}, heard.media
    assert all(e["position"] > 0.5 for e in ended), ended
    # What played is what was fetched: one blob per answer, audio of the answer's size.
    played = [heard.blobs[e["src"]] for e in ended]
    assert all(b["type"].startswith("audio/") for b in played), played
    assert sorted(b["size"] for b in played) == sorted(c.size for c in heard.calls), played


def test_stt_answers_from_inside_the_open_webui_container(stack, tmp_path):
    """The browser's voice input takes this path: web container → STT URL."""
    wav = tmp_path / "command.wav"
    wav.write_bytes(synthesize_wav(SENTENCE))
    subprocess.run(["incus", "file", "push", "--project", PROJECT, str(wav), "web/tmp/command.wav"],
                   check=True)
    out = subprocess.run(
        ["incus", "exec", "--project", PROJECT, "web", "--",
         "curl", "-sf", "-H", f"Authorization: Bearer {_stt_key(stack['checkout'])}",
         "-F", "file=@/tmp/command.wav", "-F", "model=whisper-1",
         f"{STT_URL}/v1/audio/transcriptions"],
        capture_output=True, text=True, check=True,
    )
    assert _words(json.loads(out.stdout)["text"]) == _words(SENTENCE)


def test_stt_refuses_a_client_without_the_generated_key(stack):
    response = httpx.get(f"{STT_URL}/v1/models", timeout=30)
    assert response.status_code == 401, response.text


def test_second_apply_changes_nothing(stack):
    serial = _server_cert(stack["checkout"]).serial_number
    result = stack["checkout"].make("apply", stack["args"])
    assert result.returncode == 0, result.output[-6000:]
    recap = result.recap()
    assert {"localhost", "ai", "web"} <= recap.keys(), recap
    changed = {host: totals["changed"] for host, totals in recap.items() if totals["changed"]}
    assert changed == {}, f"a re-run with nothing changed still changed: {changed}"
    assert _server_cert(stack["checkout"]).serial_number == serial, "the certificate was re-issued"


def test_a_name_added_to_infra_yml_reissues_the_certificate(stack):
    checkout = stack["checkout"]
    before = _server_cert(checkout)
    infra = checkout.path / "infra.yml"
    infra.write_text(infra.read_text() + "front_door:\n  names: [door.aistack.test]\n")
    result = checkout.make("apply-webui", stack["args"])
    assert result.returncode == 0, result.output[-6000:]
    after = _server_cert(checkout)
    assert after.serial_number != before.serial_number
    names = after.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "door.aistack.test" in names.get_values_for_type(x509.DNSName)
    # The door serves it: a client that knows the host by the new name verifies it with the CA.
    host = _door_url(stack["apply"].output).removeprefix("https://").split(":")[0]
    context = ssl.create_default_context(cafile=str(checkout.path / ".aistack/front-door/ca.crt"))
    with socket.create_connection((host, 443), timeout=30) as raw, context.wrap_socket(
        raw, server_hostname="door.aistack.test"
    ) as tls:
        served = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
    assert served.serial_number == after.serial_number


def test_make_check_changes_nothing(stack):
    before = _incus_state()
    config_before = subprocess.run(
        ["incus", "config", "show", "--project", PROJECT, "ai"], capture_output=True, text=True,
        check=True,
    ).stdout
    result = stack["checkout"].make("check", stack["args"])
    assert result.returncode == 0, result.output[-6000:]
    assert _stt_key(stack["checkout"]) not in result.output
    assert all(t["changed"] == 0 for t in result.recap().values()), result.recap()
    assert _incus_state() == before
    after = subprocess.run(
        ["incus", "config", "show", "--project", PROJECT, "ai"], capture_output=True, text=True,
        check=True,
    ).stdout
    assert after == config_before


def test_model_switch_in_host_vars_takes_effect(stack):
    host_vars = stack["host_vars"]
    text = host_vars.read_text()
    host_vars.write_text(text.replace("stt_server_model: tiny.en", "stt_server_model: base"))
    result = stack["checkout"].make("apply-stt", stack["args"])
    assert result.returncode == 0, result.output[-6000:]
    touched = set(result.recap())
    assert touched <= {"localhost", "ai"}, f"apply-stt touched more than the STT machine: {touched}"
    assert result.recap()["ai"]["changed"] > 0

    health = httpx.get(f"{STT_URL}/health", timeout=30).json()
    assert health["model"] == "base", health

    french = synthesize_wav("bonjour, je voudrais réserver une table pour ce soir", voice="fr")
    response = httpx.post(
        f"{STT_URL}/v1/audio/transcriptions",
        files={"file": ("fr.wav", french, "audio/wav")},
        data={"model": "whisper-1", "response_format": "verbose_json"},
        headers={"Authorization": f"Bearer {_stt_key(stack['checkout'])}"},
        timeout=120,
    )
    assert response.status_code == 200, response.text
    assert response.json()["language"] in {"fr", "french"}


def test_destroy_leaves_nothing_behind(stack):
    result = stack["checkout"].make("destroy", "FORCE=1")
    assert result.returncode == 0, result.output[-6000:]
    state = _incus_state()
    assert PROJECT not in state["projects"]
    assert BRIDGE not in state["networks"]
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", 443)) != 0, "the front door still listens on 443"
