"""What a user of the LLM machine sees after ollama_server ran: the upgraded
release serving on the container's address, the models pulled once, and bad
input refused without touching the running service.

The machine runs the aistack Ollama test double (tests/fixtures/ollama-test-double),
installed through the role's local-archive path, because the real Ollama archive
cannot be downloaded where these tests run.
"""

import json
import sys
from importlib.util import module_from_spec, spec_from_file_location
from pathlib import Path

ADDRESS = "10.203.20.10:11434"
NEW = "1.1.0-aistack-test-double"


def api(host, path, body=None):
    data = (
        f"-H 'Content-Type: application/json' -d '{json.dumps(body)}'" if body is not None else ""
    )
    return json.loads(host.check_output(f"curl -fsS {data} http://{ADDRESS}{path}"))


def test_service_is_enabled_and_running(host):
    service = host.service("ollama")
    assert service.is_enabled
    assert service.is_running


def test_api_answers_with_the_upgraded_version_on_the_container_address(host):
    assert api(host, "/api/version") == {"version": NEW}
    assert host.socket(f"tcp://{ADDRESS}").is_listening
    assert not host.socket("tcp://127.0.0.1:11434").is_listening


def test_only_the_pinned_release_is_left_installed(host):
    assert host.file("/opt/ollama/current").linked_to == f"/opt/ollama/{NEW}"
    releases = sorted(host.check_output("ls /opt/ollama").split())
    assert releases == sorted(["current", NEW])
    assert host.check_output("/usr/local/bin/ollama -v").startswith(f"ollama version is {NEW}")


def test_service_runs_as_ollama_with_the_configured_environment(host):
    pid = host.check_output("systemctl show --property MainPID --value ollama")
    assert host.check_output(f"ps -o user= -p {pid}") == "ollama"
    environ = dict(
        line.split("=", 1)
        for line in host.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ").splitlines()
    )
    assert environ["OLLAMA_HOST"] == ADDRESS
    assert environ["OLLAMA_MODELS"] == "/var/lib/ollama/models"
    assert environ["OLLAMA_KEEP_ALIVE"] == "10m"
    assert environ["OLLAMA_MAX_LOADED_MODELS"] == "2"
    assert environ["OLLAMA_NUM_PARALLEL"] == "2"
    # converge says aistack-stt runs base in int8_float16 on the same GPU: Ollama leaves its
    # estimated need (aistack-stt's own table) plus 512 MiB free.
    need = _estimate().estimate("base", None, "int8_float16").total_mib + 512
    assert int(environ["OLLAMA_GPU_OVERHEAD"]) == need * 1024 * 1024


def _estimate():
    path = Path(__file__).resolve().parents[3] / "stt/src/aistack_stt/vram/estimate.py"
    spec = spec_from_file_location("aistack_stt_estimate_for_molecule", path)
    module = module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_listed_models_are_there_and_each_was_pulled_once(host):
    names = {model["name"] for model in api(host, "/api/tags")["models"]}
    assert {"llama3.2:latest", "tinyllama:latest"} <= names
    assert "nonexistent-model:latest" not in names
    journal = host.check_output("journalctl --unit ollama --no-pager")
    # tinyllama came with the old release and survived the upgrade; neither
    # converge nor its idempotence run nor the side effect pulled a model twice.
    assert journal.count("pulled tinyllama:latest") == 1
    assert journal.count("pulled llama3.2:latest") == 1
    manifest = host.file(
        "/var/lib/ollama/models/manifests/registry.ollama.ai/library/llama3.2/latest"
    )
    assert manifest.user == "ollama"


def test_models_answer_a_chat(host):
    reply = api(
        host,
        "/api/chat",
        {"model": "llama3.2", "stream": False, "messages": [{"role": "user", "content": "hello"}]},
    )
    assert reply["message"]["content"].endswith("You said: hello")


def test_ollama_command_in_a_login_shell_talks_to_the_service(host):
    listing = host.check_output("bash -lc 'ollama list'")
    assert "llama3.2:latest" in listing
