"""What `aistack sync` writes, and how it treats files that already exist."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml
from generator_support import EXAMPLE, REPO, Workspace

from aistack.blocks import BEGIN, END

BIN = Path(sys.executable).parent


def load(ws: Workspace, rel: str) -> dict:
    return yaml.safe_load(ws.read(rel))


def test_sync_writes_the_contract_variables(ws: Workspace) -> None:
    result = ws.sync()
    assert result.code == 0, result.err
    everything = load(ws, "group_vars/all.yml")
    lab = everything["aistack_domains"]["lab"]
    acl = lab.pop("network_acl")
    assert acl["name"] == "aistack-lab"
    assert lab == {
        "name": "lab", "description": "Private AI stack", "project": "lab", "bridge": "br-lab",
        "subnet": "10.100.10.0/24", "gateway": "10.100.10.1", "netmask_bits": 24,
        "dhcp_range_start": "10.100.10.200", "dhcp_range_end": "10.100.10.254",
        "ephemeral": False, "profiles": {}, "machines": ["ai", "web"],
    }
    assert everything["aistack_base_subnet"] == "10.100"
    assert everything["aistack_gpu_required"] is False
    assert everything["aistack_image_build"] is None
    assert load(ws, "group_vars/lab.yml") == {
        "ansible_connection": "homelab.aistack.incus", "ansible_incus_project": "lab",
        "ansible_incus_remote": "local", "ansible_python_interpreter": "/usr/bin/python3",
        "aistack_domain": "lab",
    }
    ai = load(ws, "host_vars/ai.yml")
    assert ai["aistack_instance"] == {
        "name": "ai", "domain": "lab", "project": "lab", "description": "Ollama and STT",
        "type": "lxc", "ip": "10.100.10.10", "image": "images:debian/12",
        "profiles": ["default"], "config": {"limits.cpu": "2"}, "devices": {},
        "ephemeral": False, "gpu": False,
    }
    assert ai["aistack_roles"] == ["ollama_server", "stt_server"]
    web = load(ws, "host_vars/web.yml")
    assert web["open_webui_ollama_base_url"] == "http://10.100.10.10:11434"
    assert web["open_webui_stt_base_url"] == "http://10.100.10.10:8000/v1"
    assert web["open_webui_stt_host"] == "ai"


def test_second_sync_with_no_change_writes_nothing(ws: Workspace) -> None:
    ws.sync()
    before = ws.snapshot()
    result = ws.sync()
    assert result.code == 0
    assert "up to date: 5 files" in result.err
    assert ws.snapshot() == before


def test_sync_preserves_user_text_around_the_block_byte_for_byte(ws: Workspace) -> None:
    ws.sync()
    path = ws.root / "host_vars/web.yml"
    text = path.read_text()
    above = "# my notes\r\n---\n"
    below = "# tuned by hand\r\nopen_webui_port: 9090   # keep\n\n"
    path.write_bytes((above + text[len("---\n"):] + below).encode())
    ws.write(EXAMPLE.replace("description: Open WebUI", "description: Web front end"))
    assert ws.sync().code == 0
    new = path.read_bytes().decode()
    assert new.startswith(above + BEGIN)
    assert new.endswith(END + "\n" + below)
    assert "Web front end" in new


def test_user_key_below_the_block_wins(ws: Workspace) -> None:
    ws.sync()
    path = ws.root / "host_vars/web.yml"
    path.write_text(path.read_text() + "open_webui_stt_base_url: http://elsewhere:8000/v1\n")
    ws.sync()
    assert load(ws, "host_vars/web.yml")["open_webui_stt_base_url"] == "http://elsewhere:8000/v1"


def test_block_goes_after_the_document_start_of_an_existing_user_file(ws: Workspace) -> None:
    (ws.root / "host_vars").mkdir()
    (ws.root / "host_vars/ai.yml").write_text("# mine\n---\nollama_server_models: [llama3]\n")
    ws.sync()
    text = ws.read("host_vars/ai.yml")
    assert text.startswith("# mine\n---\n" + BEGIN)
    assert text.endswith(END + "\nollama_server_models: [llama3]\n")
    assert load(ws, "host_vars/ai.yml")["ollama_server_models"] == ["llama3"]


def test_damaged_markers_are_an_error_and_nothing_is_written(ws: Workspace) -> None:
    ws.sync()
    path = ws.root / "host_vars/ai.yml"
    path.write_text(path.read_text().replace(END + "\n", ""))
    before = ws.snapshot()
    ws.write(EXAMPLE.replace("Open WebUI", "Changed"))
    result = ws.sync()
    assert result.code == 2
    assert "host_vars/ai.yml: the managed block markers are damaged" in result.err
    assert ws.snapshot() == before


def test_dry_run_prints_a_unified_diff_and_writes_nothing(ws: Workspace) -> None:
    ws.sync()
    before = ws.snapshot()
    ws.write(EXAMPLE.replace("ip: 10.100.10.10", "ip: 10.100.10.11"))
    result = ws.sync("--dry-run")
    assert result.code == 0
    assert "--- a/host_vars/web.yml\n+++ b/host_vars/web.yml\n" in result.out
    assert "-open_webui_ollama_base_url: http://10.100.10.10:11434\n" in result.out
    assert "+open_webui_ollama_base_url: http://10.100.10.11:11434\n" in result.out
    assert "would update host_vars/ai.yml" in result.err
    assert ws.snapshot() == before


def test_dry_run_on_a_fresh_directory_shows_new_files(ws: Workspace) -> None:
    result = ws.sync("--dry-run")
    assert "--- /dev/null\n+++ b/group_vars/all.yml\n" in result.out
    assert not (ws.root / "group_vars").exists()


def test_orphans_are_listed_on_every_sync_and_removed_on_request(ws: Workspace) -> None:
    text = EXAMPLE + (
        "  old:\n    subnet_id: 20\n    machines:\n      gone:\n        ip: 10.100.20.5\n"
    )
    ws.write(text)
    ws.sync()
    (ws.root / "host_vars/mine.yml").write_text("---\nfoo: 1\n")  # the user's own file
    ws.write(EXAMPLE)
    for _ in range(2):
        result = ws.sync()
        assert "orphan host_vars/gone.yml: machine gone is no longer in infra.yml" in result.err
        assert "orphan inventory/old.yml" in result.err
        assert "orphan group_vars/old.yml" in result.err
        assert (ws.root / "host_vars/gone.yml").exists()
    result = ws.sync("--clean-orphans")
    assert "remove host_vars/gone.yml" in result.err
    for rel in ("host_vars/gone.yml", "inventory/old.yml", "group_vars/old.yml"):
        assert not (ws.root / rel).exists()
    assert (ws.root / "host_vars/mine.yml").read_text() == "---\nfoo: 1\n"
    assert not [line for line in ws.sync().err.splitlines() if line.startswith("orphan")]


def test_gpu_machine_gets_the_gpu_profile_and_its_own_device(ws: Workspace) -> None:
    ws.write(EXAMPLE.replace("roles: [ollama_server, stt_server]",
                             "roles: [ollama_server, stt_server]\n        gpu: 1"))
    assert ws.sync().code == 0
    everything = load(ws, "group_vars/all.yml")
    assert everything["aistack_gpu_required"] is True
    assert everything["aistack_domains"]["lab"]["profiles"]["gpu"] == {
        "description": "GPU passthrough with the NVIDIA runtime (added by aistack)",
        "config": {"nvidia.runtime": "true"},
        "devices": {"gpu": {"type": "gpu", "gputype": "physical"}},
    }
    instance = load(ws, "host_vars/ai.yml")["aistack_instance"]
    assert instance["profiles"] == ["default", "gpu"]
    assert instance["gpu"] is True
    assert instance["devices"] == {"gpu": {"type": "gpu", "gputype": "physical", "id": "1"}}
    assert load(ws, "host_vars/web.yml")["aistack_instance"]["gpu"] is False


def test_domain_gpu_profile_is_used_as_defined(ws: Workspace) -> None:
    text = EXAMPLE.replace("    subnet_id: 10\n", "    subnet_id: 10\n    profiles:\n      gpu:\n"
                           "        config:\n"
                           "          {nvidia.runtime: true, nvidia.driver.capabilities: all}\n"
                           "        devices: {card: {type: gpu, pci: '0000:01:00.0'}}\n")
    ws.write(text.replace("roles: [ollama_server, stt_server]",
                          "roles: [ollama_server, stt_server]\n        gpu: true"))
    assert ws.sync().code == 0
    profile = load(ws, "group_vars/all.yml")["aistack_domains"]["lab"]["profiles"]["gpu"]
    assert profile["config"] == {"nvidia.runtime": "true", "nvidia.driver.capabilities": "all"}
    assert profile["devices"] == {"card": {"type": "gpu", "pci": "0000:01:00.0"}}
    assert load(ws, "host_vars/ai.yml")["aistack_instance"]["devices"] == {}


def test_machine_vars_are_copied_verbatim_and_ports_feed_the_wiring(ws: Workspace) -> None:
    ws.write(EXAMPLE.replace("roles: [ollama_server, stt_server]",
                             "roles: [ollama_server, stt_server]\n        vars:\n"
                             "          stt_server_port: 8100\n"
                             "          stt_server_model: {name: small, beam: [1, 5]}\n"))
    ws.sync()
    ai = load(ws, "host_vars/ai.yml")
    assert ai["stt_server_port"] == 8100
    assert ai["stt_server_model"] == {"name": "small", "beam": [1, 5]}
    assert load(ws, "host_vars/web.yml")["open_webui_stt_base_url"] == "http://10.100.10.10:8100/v1"


def test_wiring_prefers_the_same_domain_then_any_domain(ws: Workspace) -> None:
    text = EXAMPLE + ("  dev:\n    subnet_id: 11\n    machines:\n      llm:\n"
                      "        ip: 10.100.11.10\n        roles: [ollama_server]\n"
                      "      ui:\n        ip: 10.100.11.20\n        roles: [open_webui]\n")
    ws.write(text)
    assert ws.sync().code == 0, ws.sync().err
    ui = load(ws, "host_vars/ui.yml")
    assert ui["open_webui_ollama_base_url"] == "http://10.100.11.10:11434"  # same domain
    assert ui["open_webui_stt_base_url"] == "http://10.100.10.10:8000/v1"  # the only one
    assert load(ws, "host_vars/web.yml")["open_webui_ollama_base_url"] == "http://10.100.10.10:11434"


def test_explicit_wiring_settles_a_choice(ws: Workspace) -> None:
    text = EXAMPLE.replace("      web:\n", "      llm2:\n        ip: 10.100.10.30\n"
                           "        roles: [ollama_server]\n      web:\n")
    ws.write(text.replace("roles: [open_webui]",
                          "roles: [open_webui]\n        wiring: {ollama_server: llm2}"))
    assert ws.sync().code == 0
    assert load(ws, "host_vars/web.yml")["open_webui_ollama_base_url"] == "http://10.100.10.30:11434"


def test_generated_files_pass_yamllint(ws: Workspace) -> None:
    ws.write(EXAMPLE.replace("description: Open WebUI", "description: " + "a long text " * 12))
    ws.sync()
    files = [str(p) for d in ("inventory", "group_vars", "host_vars")
             for p in (ws.root / d).glob("*.yml")]
    run = subprocess.run([str(BIN / "yamllint"), "-s", "-c", str(REPO / ".yamllint"), *files],
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout
    default = subprocess.run([str(BIN / "yamllint"), "-s", "-d", "default", *files],
                             capture_output=True, text=True, check=False)
    assert default.returncode == 0, default.stdout


def test_ansible_inventory_sees_groups_and_vars(ws: Workspace) -> None:
    ws.write(EXAMPLE + "  dev:\n    subnet_id: 11\n    machines:\n      llm:\n"
             "        ip: 10.100.11.10\n        roles: [ollama_server]\n")
    assert ws.sync().code == 0
    run = subprocess.run([str(BIN / "ansible-inventory"), "-i", str(ws.root / "inventory"),
                          "--list"], capture_output=True, text=True, check=False,
                         env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")})
    assert run.returncode == 0, run.stderr
    inventory = json.loads(run.stdout)
    assert sorted(inventory["aistack"]["children"]) == ["dev", "lab"]
    assert sorted(inventory["lab"]["hosts"]) == ["ai", "web"]
    assert inventory["dev"]["hosts"] == ["llm"]
    assert sorted(inventory["ollama_server"]["hosts"]) == ["ai", "llm"]
    assert inventory["_meta"]["hostvars"]["llm"]["ansible_incus_project"] == "dev"
    assert inventory["stt_server"]["hosts"] == ["ai"]
    assert inventory["open_webui"]["hosts"] == ["web"]
    web = inventory["_meta"]["hostvars"]["web"]
    assert web["ansible_connection"] == "homelab.aistack.incus"
    assert web["ansible_incus_project"] == "lab"
    assert web["aistack_instance"]["ip"] == "10.100.10.20"
    assert web["aistack_domains"]["lab"]["bridge"] == "br-lab"
    assert web["open_webui_stt_base_url"] == "http://10.100.10.10:8000/v1"


def test_default_profile_comes_first_once_and_may_be_extended(ws: Workspace) -> None:
    text = EXAMPLE.replace("    subnet_id: 10\n", "    subnet_id: 10\n    profiles:\n"
                           "      default:\n        config: {boot.autostart.delay: 5}\n"
                           "      big:\n        config: {limits.cpu: 8}\n")
    ws.write(text.replace("roles: [open_webui]", "roles: [open_webui]\n"
                          "        profiles: [big, default]"))
    assert ws.sync().code == 0
    profiles = load(ws, "group_vars/all.yml")["aistack_domains"]["lab"]["profiles"]
    assert profiles["default"]["config"] == {"boot.autostart.delay": "5"}
    assert profiles["big"]["config"] == {"limits.cpu": "8"}
    assert load(ws, "host_vars/web.yml")["aistack_instance"]["profiles"] == ["default", "big"]
    assert load(ws, "host_vars/ai.yml")["aistack_instance"]["profiles"] == ["default"]


def test_relative_ca_certificates_become_absolute_paths(ws: Workspace) -> None:
    (ws.root / "certs").mkdir()
    (ws.root / "certs/home.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    ws.write(EXAMPLE.replace("ca_certificates: []", "ca_certificates: [certs/home.pem]"))
    assert ws.sync().code == 0
    certs = load(ws, "group_vars/all.yml")["aistack_ca_certificates"]
    assert certs == [str((ws.root / "certs/home.pem").resolve())]


def test_roles_come_from_the_roles_directory_given(ws: Workspace) -> None:
    (ws.root / "other_roles/ollama_server").mkdir(parents=True)
    (ws.root / "other_roles/.git").mkdir()
    result = ws.run("validate", str(ws.infra), "--roles-dir", str(ws.root / "other_roles"))
    assert result.code == 2
    assert "unknown role 'open_webui'; known roles: ollama_server" in result.err
    missing = ws.run("validate", str(ws.infra), "--roles-dir", str(ws.root / "nowhere"))
    assert missing.code == 2 and "no roles/ directory" in missing.err
