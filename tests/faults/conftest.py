"""The faults test's own stack: a scratch checkout whose infra.yml declares the project
`faults` on bridge br-faults (10.100.61.0/24) and the front door on host ports 18443 (Open
WebUI) and 18444 (STT), so that it never meets the e2e, fresh-host, remote or cluster
tests' projects, subnets or ports. scripts/run-tests holds /tmp/aistack-incus-faults.lock
around it."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.helpers.checkout import ROOT, Checkout, make_checkout, ollama_test_double_vars

PROJECT = "faults"
AI, WEB = "fai", "fweb"
AI_IP, WEB_IP = "10.100.61.10", "10.100.61.20"
DOOR_PORT, DOOR_STT_PORT = 18443, 18444

INFRA = f"""---
global:
  base_subnet: "10.100"
  default_image: local:aistack/debian-12
  image_build:
    alias: aistack/debian-12
    suite: bookworm
    mirror: http://deb.debian.org/debian
  ca_certificates:
    - /etc/ssl/certs/ca-certificates.crt
  remote: local
  storage_pool: default

domains:
  {PROJECT}:
    description: The faults test's stack
    subnet_id: 61
    ephemeral: false
    machines:
      {AI}:
        type: lxc
        ip: {AI_IP}
        roles: [ollama_server, stt_server]
        config:
          limits.cpu: "2"
          limits.memory: 8GiB
        vars:
          stt_server_model: tiny.en
      {WEB}:
        type: lxc
        ip: {WEB_IP}
        roles: [open_webui]
        config:
          limits.memory: 4GiB

front_door:
  https_port: {DOOR_PORT}
  stt_port: {DOOR_STT_PORT}
"""


def project_exists() -> bool:
    out = subprocess.run(
        ["incus", "project", "list", "--format", "json"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return any(p["name"] == PROJECT for p in json.loads(out))


@pytest.fixture(scope="session")
def checkout() -> Checkout:
    """A fresh copy under .cache/faults, its infra.yml the faults stack's."""
    copy = make_checkout(ROOT / ".cache" / "faults" / "aistack")
    # The example's generated inventory and vars go: `make sync` writes the faults stack's,
    # and a machine of the example left in the inventory would be applied too.
    for folder in ("inventory", "host_vars", "group_vars"):
        for generated in (copy.path / folder).glob("*.yml"):
            generated.unlink()
    (copy.path / "infra.yml").write_text(INFRA)
    return copy


@pytest.fixture(scope="session")
def stack(checkout: Checkout) -> dict:
    """`make apply` of the faults stack, from a host without it."""
    if project_exists():
        assert checkout.make("destroy", "FORCE=1").returncode == 0
    extra = ollama_test_double_vars(checkout)
    args = f"ARGS=-e @{extra}"
    result = checkout.make("apply", args)
    assert result.returncode == 0, result.output[-6000:]
    yield {"checkout": checkout, "apply": result, "args": args}
    checkout.make("destroy", "FORCE=1")
