"""Helpers for the stt_server verify step: speech made on the controller, HTTP from outside.

The container's address and project come from this scenario's molecule.yml, so the tests talk
to the service the way a user's client on the LAN would.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

SCENARIO = Path(__file__).resolve().parent.parent
ROOT = SCENARIO.parent.parent


@dataclass(frozen=True)
class Target:
    name: str
    project: str
    ip: str
    port: int
    base_host_vars: dict

    @property
    def url(self) -> str:
        return f"http://{self.ip}:{self.port}"


@pytest.fixture(scope="session")
def target() -> Target:
    config = yaml.safe_load((SCENARIO / "molecule.yml").read_text())
    platform = config["platforms"][0]
    host_vars = config["provisioner"]["inventory"]["host_vars"][platform["name"]]
    return Target(
        name=platform["name"],
        project=platform["project"],
        ip=platform["ip"],
        port=int(host_vars.get("stt_server_port", 8000)),
        base_host_vars=host_vars,
    )


def health(target: Target) -> dict:
    with urllib.request.urlopen(f"{target.url}/health", timeout=10) as resp:
        return json.loads(resp.read())


def speak(text: str, voice: str, path: Path) -> Path:
    """Synthesize `text` with espeak-ng on the controller (a real voice, not a fixture file)."""
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), text], check=True)
    return path


def words(text: str) -> list[str]:
    return re.findall(r"[a-zà-ÿ']+", text.lower())


@pytest.fixture(scope="session")
def speech_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("speech")
