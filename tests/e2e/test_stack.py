"""The product as a user meets it: `make apply` on the example infra.yml, from
nothing to a stack whose Open WebUI turns speech into text, then a no-change
re-run, a model switch through host_vars and `make destroy`.

The tests run in file order and share one stack; each step depends on the one
before, as it would for a user following the README.
"""

from __future__ import annotations

import json
import subprocess

import httpx
import pytest

from tests.helpers.checkout import ollama_test_double_vars
from tests.helpers.speech import synthesize_wav
from tests.helpers.voice import OpenWebUI

pytestmark = pytest.mark.e2e

PROJECT, BRIDGE = "lab", "br-lab"
AI_IP, WEB_IP = "10.100.10.10", "10.100.10.20"
STT_URL = f"http://{AI_IP}:8000"
WEBUI_URL = f"http://{WEB_IP}:8080"
SENTENCE = "please turn on the kitchen lights"


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
    assert "NOT ANSWERING" not in result.output


def test_spoken_sentence_through_open_webui_comes_back_as_text(stack):
    webui = OpenWebUI(WEBUI_URL)
    webui.sign_in_as_admin()
    config = webui.audio_config()
    assert config["stt"]["ENGINE"] == "openai"
    assert config["stt"]["OPENAI_API_BASE_URL"] == f"{STT_URL}/v1"
    text = webui.transcribe(synthesize_wav(SENTENCE))
    assert _words(text) == _words(SENTENCE)


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
    result = stack["checkout"].make("apply", stack["args"])
    assert result.returncode == 0, result.output[-6000:]
    recap = result.recap()
    assert {"localhost", "ai", "web"} <= recap.keys(), recap
    changed = {host: totals["changed"] for host, totals in recap.items() if totals["changed"]}
    assert changed == {}, f"a re-run with nothing changed still changed: {changed}"


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
