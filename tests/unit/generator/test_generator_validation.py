"""Every kind of bad infra.yml is rejected with file:line, the key path and a fix; exit 2."""

from __future__ import annotations

import base64
import json

import pytest
from generator_support import EXAMPLE, Workspace

TWO_DOMAINS = EXAMPLE + """\
  dev:
    subnet_id: 11
    machines:
      box:
        ip: 10.100.11.10
"""


def errors(ws: Workspace, text: str) -> list[str]:
    ws.write(text)
    result = ws.run("validate", str(ws.infra))
    assert result.code == 2, result
    assert "Traceback" not in result.err
    lines = result.err.strip().splitlines()
    assert lines[-1].endswith("nothing was written")
    return lines[:-1]


def the_error(ws: Workspace, text: str, path: str) -> str:
    found = [line for line in errors(ws, text) if f": {path}: " in line]
    assert found, f"no error names {path}"
    return found[0]


CASES = [
    # (id, replace this, with this, key path, words the message must contain)
    ("domain not a DNS label", "  lab:\n", "  Lab_1:\n", "domains.Lab_1", "not a DNS label"),
    ("bridge name too long", "  lab:\n", "  thirteenchars:\n", "domains.thirteenchars",
     "'br-thirteenchars' 16"),
    ("domain is a reserved group", "  lab:\n", "  aistack:\n", "domains.aistack", "group"),
    ("machine not a DNS label", "      web:\n", "      web_1:\n", "domains.lab.machines.web_1",
     "not a DNS label"),
    ("machine named like a domain", "      web:\n", "      lab:\n", "domains.lab.machines.lab",
     "also the name of a domain"),
    ("machine name ends with dash", "      web:\n", "      web-:\n", "domains.lab.machines.web-",
     "not ending with '-'"),
    ("subnet_id above 255", "subnet_id: 10", "subnet_id: 256", "domains.lab.subnet_id",
     "out of range"),
    ("subnet_id negative", "subnet_id: 10", "subnet_id: -1", "domains.lab.subnet_id",
     "out of range"),
    ("subnet_id not a number", "subnet_id: 10", "subnet_id: ten", "domains.lab.subnet_id",
     "whole number"),
    ("ip outside subnet", "ip: 10.100.10.20", "ip: 10.100.11.5", "domains.lab.machines.web.ip",
     "10.100.11.5 is outside domain lab's subnet 10.100.10.0/24; "
     "use an address in 10.100.10.2–10.100.10.199"),
    ("ip is the network", "ip: 10.100.10.20", "ip: 10.100.10.0", "domains.lab.machines.web.ip",
     "network address"),
    ("ip is the gateway", "ip: 10.100.10.20", "ip: 10.100.10.1", "domains.lab.machines.web.ip",
     "gateway"),
    ("ip is the broadcast", "ip: 10.100.10.20", "ip: 10.100.10.255",
     "domains.lab.machines.web.ip", "broadcast"),
    ("ip in the DHCP range", "ip: 10.100.10.20", "ip: 10.100.10.210",
     "domains.lab.machines.web.ip", "DHCP range"),
    ("ip not an address", "ip: 10.100.10.20", "ip: 10.100.10", "domains.lab.machines.web.ip",
     "not an IPv4 address"),
    ("duplicate ip", "ip: 10.100.10.20", "ip: 10.100.10.10", "domains.lab.machines.web.ip",
     "already the address of machine ai"),
    ("unknown role", "roles: [open_webui]", "roles: [open_webu]",
     "domains.lab.machines.web.roles[0]", "did you mean 'open_webui'"),
    ("host-only role", "roles: [open_webui]", "roles: [open_webui, incus_host]",
     "domains.lab.machines.web.roles[1]", "runs on the Incus host"),
    ("undefined profile", "roles: [open_webui]", "roles: [open_webui]\n        profiles: [big]",
     "domains.lab.machines.web.profiles[0]", "profile 'big' is not defined in domain lab"),
    ("unknown machine key", "roles: [open_webui]", "rolse: [open_webui]",
     "domains.lab.machines.web.rolse", "did you mean 'roles'"),
    ("unknown global key", "  remote: local", "  remotee: local", "global.remotee",
     "did you mean 'remote'"),
    ("unknown top key", "domains:\n", "domain:\n", "domain", "did you mean 'domains'"),
    ("unknown domain key", "    subnet_id: 10", "    subnet_id: 10\n    subnet: 10",
     "domains.lab.subnet", "did you mean 'subnet_id'"),
    ("missing base_subnet", '  base_subnet: "10.100"\n', "", "global.base_subnet", "required"),
    ("bad base_subnet", 'base_subnet: "10.100"', 'base_subnet: "10.300"', "global.base_subnet",
     "two octets"),
    ("missing ip", "        ip: 10.100.10.20\n", "", "domains.lab.machines.web.ip", "required"),
    ("bad gpu_policy", "gpu_policy: exclusive", "gpu_policy: all", "global.gpu_policy",
     "exclusive, shared"),
    ("bad machine type", "type: lxc", "type: docker", "domains.lab.machines.ai.type",
     "lxc, vm"),
    ("bad image", "default_image: images:debian/12", "default_image: debian",
     "global.default_image", "<remote>:<alias>"),
    ("bad gpu value", "roles: [open_webui]", "roles: [open_webui]\n        gpu: lots",
     "domains.lab.machines.web.gpu", "not a GPU choice"),
    ("gpu on a vm", "roles: [open_webui]",
     "roles: [open_webui]\n        type: vm\n        gpu: true",
     "domains.lab.machines.web.gpu", "vm"),
    ("missing CA file", "ca_certificates: []", "ca_certificates: [/nonexistent/ca.pem]",
     "global.ca_certificates[0]", "does not exist"),
    ("reserved variable", "roles: [open_webui]",
     "roles: [open_webui]\n        vars: {aistack_roles: []}",
     "domains.lab.machines.web.vars.aistack_roles", "written by the generator"),
    ("bad port", "roles: [ollama_server, stt_server]",
     "roles: [ollama_server, stt_server]\n        vars: {stt_server_port: 99999}",
     "domains.lab.machines.ai.vars.stt_server_port", "not a TCP port"),
    ("device without type", "roles: [open_webui]",
     "roles: [open_webui]\n        devices: {data: {path: /srv}}",
     "domains.lab.machines.web.devices.data", "no 'type'"),
    ("role listed twice", "roles: [open_webui]", "roles: [open_webui, open_webui]",
     "domains.lab.machines.web.roles[1]", "listed twice"),
    ("wiring to a machine without the role", "roles: [open_webui]",
     "roles: [open_webui]\n        wiring: {stt_server: web}",
     "domains.lab.machines.web.wiring.stt_server", "does not carry role stt_server"),
    ("no ollama for open_webui", "roles: [ollama_server, stt_server]", "roles: [stt_server]",
     "domains.lab.machines.web.roles", "needs a machine with role ollama_server"),
    ("allow for a role the machine lacks", "roles: [open_webui]",
     "roles: [open_webui]\n        allow: {stt_server: [ai]}",
     "domains.lab.machines.web.allow.stt_server", "it serves: open_webui"),
    ("allow from an unknown machine", "roles: [open_webui]",
     "roles: [open_webui]\n        allow: {open_webui: [laptop]}",
     "domains.lab.machines.web.allow.open_webui[0]", "'laptop' is neither a machine"),
    ("allow from a bad network", "roles: [open_webui]",
     "roles: [open_webui]\n        allow: {open_webui: [192.168.1.5/24]}",
     "domains.lab.machines.web.allow.open_webui[0]", "not an IPv4 network"),
    ("allow with an empty list", "roles: [open_webui]",
     "roles: [open_webui]\n        allow: {8080: []}",
     "domains.lab.machines.web.allow.8080", "non-empty list"),
    ("remote_url over plain HTTP", "  remote: local\n",
     "  remote: box\n  remote_url: http://box:8443\n", "global.remote_url",
     "HTTPS only: write https://box:8443"),
    ("remote_url with a path", "  remote: local\n",
     "  remote: box\n  remote_url: https://box:8443/1.0\n", "global.remote_url",
     "has a path"),
    ("remote_url with a bad port", "  remote: local\n",
     "  remote: box\n  remote_url: https://box:84x3\n", "global.remote_url", "port"),
    ("remote_url with a relative socket", "  remote: local\n",
     "  remote: box\n  remote_url: unix:run/incus.socket\n", "global.remote_url",
     "absolute path"),
    ("remote name with a colon", "  remote: local\n",
     "  remote: 'gpu:box'\n  remote_url: https://box:8443\n", "global.remote",
     "cannot name an Incus remote"),
    ("remote_token not a token", "  remote: local\n",
     "  remote: box\n  remote_url: https://box:8443\n  remote_token: secret\n",
     "global.remote_token", "not an Incus trust token"),
    ("client_cert without client_key", "  remote: local\n",
     "  remote: box\n  remote_url: https://box:8443\n"
     "  client_cert: /etc/ssl/certs/ca-certificates.crt\n",
     "global.client_key", "client_cert is set, but client_key is not"),
    ("missing server_cert", "  remote: local\n",
     "  remote: box\n  remote_url: https://box:8443\n  server_cert: /nonexistent/server.crt\n",
     "global.server_cert", "does not exist"),
    ("network_acls not a boolean", "  storage_pool: default\n",
     "  storage_pool: default\n  network_acls: sometimes\n",
     "global.network_acls", "true or false"),
]


@pytest.mark.parametrize(("old", "new", "path", "words"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_validate_rejects_bad_input_naming_its_key_path(ws: Workspace, old: str, new: str,
                                                        path: str, words: str) -> None:
    assert old in EXAMPLE
    line = the_error(ws, EXAMPLE.replace(old, new, 1), path)
    assert words in line
    assert line.startswith(f"{ws.infra}:")


def test_error_gives_the_line_of_the_offending_key(ws: Workspace) -> None:
    text = EXAMPLE.replace("ip: 10.100.10.20", "ip: 10.100.11.5")
    line_no = text.splitlines().index("        ip: 10.100.11.5") + 1
    line = the_error(ws, text, "domains.lab.machines.web.ip")
    assert line == (f"{ws.infra}:{line_no}: domains.lab.machines.web.ip: 10.100.11.5 is outside "
                    "domain lab's subnet 10.100.10.0/24; use an address in "
                    "10.100.10.2–10.100.10.199")


def test_duplicate_machine_names_across_domains_are_rejected(ws: Workspace) -> None:
    text = TWO_DOMAINS.replace("      box:", "      web:").replace("ip: 10.100.11.10",
                                                                    "ip: 10.100.11.20")
    line = the_error(ws, text, "domains.dev.machines.web")
    assert "already used in domain lab" in line


def test_duplicate_subnet_id_is_rejected(ws: Workspace) -> None:
    text = TWO_DOMAINS.replace("subnet_id: 11", "subnet_id: 10")
    line = the_error(ws, text, "domains.dev.subnet_id")
    assert "already used by domain lab" in line


def test_duplicate_yaml_keys_are_rejected_with_both_lines(ws: Workspace) -> None:
    text = EXAMPLE.replace("        roles: [open_webui]\n",
                           "        roles: [open_webui]\n        roles: [stt_server]\n")
    first = text.splitlines().index("        roles: [open_webui]") + 1
    line = the_error(ws, text, "domains.lab.machines.web.roles")
    assert f"duplicate key 'roles' (first set on line {first})" in line
    assert line.startswith(f"{ws.infra}:{first + 1}:")


@pytest.mark.parametrize(
    ("text", "words"),
    [("", "the file is empty"), ("# only a comment\n", "the file is empty"),
     ("- a\n- b\n", "holds a list"), ("just text\n", "holds a string"),
     ("global: [\n", "not valid YAML")],
    ids=["empty", "comment only", "list", "scalar", "broken syntax"],
)
def test_empty_or_non_mapping_file_is_rejected(ws: Workspace, text: str, words: str) -> None:
    found = errors(ws, text)
    assert len(found) == 1 and words in found[0]


def test_more_than_one_gpu_machine_is_rejected_under_exclusive_policy(ws: Workspace) -> None:
    text = EXAMPLE.replace("roles: [open_webui]", "roles: [open_webui]\n        gpu: true")
    text = text.replace("roles: [ollama_server, stt_server]",
                        "roles: [ollama_server, stt_server]\n        gpu: 0")
    line = the_error(ws, text, "domains.lab.machines.web.gpu")
    assert "gpu_policy is exclusive and machine ai already holds one" in line
    ws.write(text.replace("gpu_policy: exclusive", "gpu_policy: shared"))
    assert ws.run("validate", str(ws.infra)).code == 0


def test_gpu_devices_given_directly_count_under_exclusive_policy(ws: Workspace) -> None:
    text = EXAMPLE.replace("roles: [open_webui]", "roles: [open_webui]\n        gpu: true")
    text = text.replace("roles: [ollama_server, stt_server]",
                        "roles: [ollama_server, stt_server]\n"
                        "        devices: {card: {type: gpu, gputype: physical}}")
    line = the_error(ws, text, "domains.lab.machines.web.gpu")
    assert "machine ai already holds one" in line


def test_gpu_device_in_a_profile_counts_under_exclusive_policy(ws: Workspace) -> None:
    text = EXAMPLE.replace("    subnet_id: 10\n", "    subnet_id: 10\n    profiles:\n"
                           "      accel:\n        devices: {card: {type: gpu}}\n")
    text = text.replace("roles: [open_webui]", "roles: [open_webui]\n        profiles: [accel]")
    text = text.replace("roles: [ollama_server, stt_server]",
                        "roles: [ollama_server, stt_server]\n        gpu: true")
    line = the_error(ws, text, "domains.lab.machines.web.profiles")
    assert "needs a GPU" in line


def test_ambiguous_ollama_names_the_candidates_and_the_fix(ws: Workspace) -> None:
    text = TWO_DOMAINS.replace("ip: 10.100.11.10\n",
                               "ip: 10.100.11.10\n        roles: [stt_server]\n")
    text = text.replace("roles: [ollama_server, stt_server]", "roles: [ollama_server]")
    text = text.replace("      web:\n", "      llm2:\n        ip: 10.100.10.30\n"
                        "        roles: [ollama_server]\n      web:\n")
    found = errors(ws, text)
    assert len(found) == 1
    assert "domains.lab.machines.web.roles" in found[0]
    assert "several machines in domain lab (ai, llm2)" in found[0]
    assert "wiring: {ollama_server: <machine>}" in found[0]


def test_all_errors_are_reported_at_once(ws: Workspace) -> None:
    text = (EXAMPLE.replace("ip: 10.100.10.20", "ip: 10.100.11.5")
            .replace("roles: [open_webui]", "roles: [open_webu]")
            .replace("subnet_id: 10", "subnet_id: 10\n    colour: blue"))
    paths = {line.split(": ")[1] for line in errors(ws, text)}
    assert paths == {"domains.lab.machines.web.ip", "domains.lab.machines.web.roles[0]",
                     "domains.lab.colour"}


def test_invalid_input_writes_nothing_and_keeps_existing_files(ws: Workspace) -> None:
    assert ws.sync().code == 0
    before = ws.snapshot()
    ws.write(EXAMPLE.replace("ip: 10.100.10.20", "ip: 10.100.10.10").replace("lab", "lab2"))
    result = ws.sync()
    assert result.code == 2
    assert "nothing was written" in result.err
    assert ws.snapshot() == before


def test_validate_reports_a_valid_file(ws: Workspace) -> None:
    result = ws.run("validate", str(ws.infra))
    assert result.code == 0
    assert "valid (1 domains, 2 machines)" in result.out


def test_missing_infra_file_is_a_clear_error(ws: Workspace) -> None:
    result = ws.run("validate", str(ws.root / "nope.yml"))
    assert result.code == 2
    assert "file not found" in result.err and "Traceback" not in result.err


def test_a_broken_base_subnet_is_reported_alone(ws: Workspace) -> None:
    found = errors(ws, EXAMPLE.replace('base_subnet: "10.100"', 'base_subnet: "10.300"'))
    assert len(found) == 1 and ": global.base_subnet: " in found[0]


def test_duplicate_keys_are_reported_with_the_other_errors(ws: Workspace) -> None:
    text = (EXAMPLE.replace("subnet_id: 10", "subnet_id: 10\n    subnet_id: 10")
            .replace("roles: [open_webui]", "roles: [open_webu]"))
    paths = {line.split(": ")[1] for line in errors(ws, text)}
    assert paths == {"domains.lab.subnet_id", "domains.lab.machines.web.roles[0]"}


def test_a_remote_other_than_local_needs_its_address(ws: Workspace) -> None:
    text = EXAMPLE.replace("  remote: local\n", "  remote: homelab\n")
    assert "remote: homelab" in text
    message = the_error(ws, text, "global.remote_url")
    assert "remote is 'homelab', but remote_url is not set" in message
    assert "https://host:8443" in message


def test_a_remote_over_https_or_a_socket_validates(ws: Workspace) -> None:
    token = base64.b64encode(json.dumps({
        "client_name": "aistack", "fingerprint": "ab" * 32, "secret": "s3",
        "addresses": ["192.168.1.20:8443"]}).encode()).decode()
    for extra in (f"  remote_url: https://192.168.1.20:8443\n  remote_token: {token}\n",
                  "  remote_url: unix:/var/lib/incus/unix.socket\n"):
        text = EXAMPLE.replace("  remote: local\n", "  remote: box\n" + extra)
        paths = [line.split(": ")[1] for line in errors(ws, text)]
        assert not [p for p in paths if p.startswith("global.")], paths
