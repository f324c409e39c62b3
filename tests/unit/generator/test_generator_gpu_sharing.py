"""A GPU shared by Ollama and aistack-stt: `aistack sync` tells each tenant about the other.

aistack-stt gets the Ollama URL (stt_server_ollama_url, to ask it to unload idle models when
GPU memory is short); Ollama gets the STT model and compute type (to keep their need free).
Without a shared GPU nothing is added.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from generator_support import EXAMPLE, REPO, Workspace

from aistack import wiring

SHARED = EXAMPLE.replace(
    "roles: [ollama_server, stt_server]", "roles: [ollama_server, stt_server]\n        gpu: true"
)
SPLIT = (
    EXAMPLE.replace("gpu_policy: exclusive", "gpu_policy: shared").replace(
        "roles: [ollama_server, stt_server]",
        "roles: [ollama_server]\n        gpu: true",
    )
    + """\
      stt:
        description: STT on the same GPU
        ip: 10.100.10.30
        gpu: true
        roles: [stt_server]
        vars:
          stt_server_model: small
          stt_server_quantization: int8_float16
"""
)


def host_vars(ws: Workspace, text: str, name: str) -> dict:
    ws.write(text)
    result = ws.sync()
    assert result.code == 0, result.err
    return yaml.safe_load(ws.read(f"host_vars/{name}.yml"))


def test_one_gpu_machine_with_both_roles_wires_them_to_each_other(ws: Workspace) -> None:
    ai = host_vars(ws, SHARED, "ai")
    assert ai["stt_server_ollama_url"] == "http://10.100.10.10:11434"
    assert ai["ollama_server_stt_model"] == "large-v3-turbo"  # the role's GPU default
    assert ai["ollama_server_stt_compute_type"] == ""


def test_two_machines_on_the_hosts_gpu_are_wired_and_the_acl_lets_stt_reach_ollama(
    ws: Workspace,
) -> None:
    stt = host_vars(ws, SPLIT, "stt")
    ai = yaml.safe_load(ws.read("host_vars/ai.yml"))
    assert stt["stt_server_ollama_url"] == "http://10.100.10.10:11434"
    assert ai["ollama_server_stt_model"] == "small"
    assert ai["ollama_server_stt_compute_type"] == "int8_float16"
    acl = yaml.safe_load(ws.read("group_vars/all.yml"))["aistack_domains"]["lab"]["network_acl"]
    ollama = next(
        r
        for r in acl["ingress"]
        if r.get("destination") == "10.100.10.10" and r.get("destination_port") == "11434"
    )
    sources = ollama["source"] if isinstance(ollama["source"], list) else [ollama["source"]]
    assert "10.100.10.30" in sources


def test_without_a_gpu_nothing_is_wired_and_user_values_win(ws: Workspace) -> None:
    ai = host_vars(ws, EXAMPLE, "ai")
    assert "stt_server_ollama_url" not in ai and "ollama_server_stt_model" not in ai
    own = SHARED.replace(
        "gpu: true", "gpu: true\n        vars:\n          stt_server_ollama_url: ''"
    )
    assert host_vars(ws, own, "ai")["stt_server_ollama_url"] == ""


def test_the_gpu_default_model_is_the_stt_server_roles() -> None:
    role_vars = yaml.safe_load(Path(REPO / "roles/stt_server/vars/main.yml").read_text())
    assert role_vars["_stt_server_default_model_gpu"] == wiring.STT_GPU_DEFAULT_MODEL


def test_machines_on_different_gpus_are_not_wired(ws: Workspace) -> None:
    text = SPLIT.replace(
        "roles: [ollama_server]\n        gpu: true", "roles: [ollama_server]\n        gpu: 0"
    )
    text = text.replace("ip: 10.100.10.30\n        gpu: true", "ip: 10.100.10.30\n        gpu: 1")
    stt = host_vars(ws, text, "stt")
    ai = yaml.safe_load(ws.read("host_vars/ai.yml"))
    assert "stt_server_ollama_url" not in stt
    assert "ollama_server_stt_model" not in ai


def test_machines_naming_the_same_gpu_are_wired(ws: Workspace) -> None:
    text = SPLIT.replace(
        "roles: [ollama_server]\n        gpu: true", "roles: [ollama_server]\n        gpu: 0"
    )
    text = text.replace("ip: 10.100.10.30\n        gpu: true", "ip: 10.100.10.30\n        gpu: 0")
    assert host_vars(ws, text, "stt")["stt_server_ollama_url"] == "http://10.100.10.10:11434"
