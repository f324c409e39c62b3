"""The faults test's own stack: the project `faults` on bridge br-faults (10.100.61.0/24)
and the front door on host ports 18443 (Open WebUI) and 18444 (STT), so that it never meets
the e2e, fresh-host, remote or cluster tests' projects, subnets or ports."""

from __future__ import annotations

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
