"""playbooks/host.yml (role incus_host) on this host: a re-run finds Incus
installed, running and initialised (changed=0), the GPU preflight stops with a
sentence, and the debootstrap builder makes an image containers boot from."""

from __future__ import annotations

import json

import pytest
from incus_harness import FIXTURES, incus, incus_exec, playbook, query, recap, run_module

pytestmark = pytest.mark.incus

INVENTORY = FIXTURES / "infra" / "inventory"
ALIAS = "t-infra/debian-12"
PROJECT = "t-infra-img"
BRIDGE = "br-ti-img"
INSTANCE = "t-infra-img1"


def test_rerun_on_a_ready_host_changes_nothing():
    run = playbook("playbooks/host.yml", INVENTORY)
    assert run.returncode == 0, run.stdout + run.stderr
    assert recap(run.stdout)["localhost"]["changed"] == 0
    assert incus("admin", "waitready", "--timeout", "5").returncode == 0
    assert query("/1.0/storage-pools/default") is not None


def test_gpu_machines_without_nvidia_stop_with_a_sentence():
    run = playbook("playbooks/host.yml", INVENTORY, "-e", "aistack_gpu_required=true")
    assert run.returncode != 0
    assert "A machine in infra.yml asks for a GPU, but this host has no working NVIDIA driver" in (
        run.stdout
    )
    assert "nvidia-container-toolkit" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr


def test_bad_image_build_settings_are_refused_before_any_work():
    bad = json.dumps(
        {
            "aistack_image_build": {
                "alias": ALIAS,
                "suite": "bookworm",
                "mirror": "deb.debian.org/debian",
            }
        }
    )
    before = query("/1.0/images")
    run = playbook("playbooks/host.yml", INVENTORY, "-e", bad)
    assert run.returncode != 0
    assert "image_build must give alias, suite and mirror" in run.stdout
    assert "Install debootstrap" not in run.stdout
    assert query("/1.0/images") == before


def _cleanup() -> None:
    if query(f"/1.0/instances/{INSTANCE}?project={PROJECT}") is not None:
        incus("delete", "--force", INSTANCE, "--project", PROJECT, check=False)
    if query(f"/1.0/projects/{PROJECT}") is not None:
        incus("project", "delete", PROJECT, check=False)
    incus("network", "delete", BRIDGE, check=False)
    if query(f"/1.0/images/aliases/{ALIAS}") is not None:
        incus("image", "delete", ALIAS, check=False)


@pytest.fixture
def built_image():
    _cleanup()
    build = json.dumps(
        {
            "aistack_image_build": {
                "alias": ALIAS,
                "suite": "bookworm",
                "mirror": "http://deb.debian.org/debian",
            }
        }
    )
    first = playbook("playbooks/host.yml", INVENTORY, "-e", build)
    assert first.returncode == 0, first.stdout + first.stderr
    yield build, first
    _cleanup()


def test_debootstrap_image_boots_with_dhcp_python_and_cas(built_image):
    build, first = built_image
    assert recap(first.stdout)["localhost"]["changed"] > 0
    alias = query(f"/1.0/images/aliases/{ALIAS}")
    image = query(f"/1.0/images/{alias['target']}")
    assert image["properties"]["os"] == "debian"
    assert image["properties"]["release"] == "bookworm"

    reuse = playbook("playbooks/host.yml", INVENTORY, "-e", build)
    assert recap(reuse.stdout)["localhost"]["changed"] == 0
    assert query(f"/1.0/images/aliases/{ALIAS}")["target"] == alias["target"]

    run_module(
        "incus_project",
        {"name": PROJECT, "config": {"features.images": False, "features.profiles": True}},
    )
    run_module(
        "incus_network",
        {
            "name": BRIDGE,
            "config": {
                "ipv4.address": "10.201.40.1/24",
                "ipv4.nat": True,
                "ipv4.dhcp.ranges": "10.201.40.200-10.201.40.254",
                "ipv6.address": "none",
            },
        },
    )
    run_module(
        "incus_profile",
        {
            "name": "default",
            "project": PROJECT,
            "devices": {"root": {"type": "disk", "path": "/", "pool": "default"}},
        },
    )
    started = run_module(
        "incus_instance",
        {
            "name": INSTANCE,
            "project": PROJECT,
            "image": f"local:{ALIAS}",
            "devices": {
                "eth0": {
                    "type": "nic",
                    "name": "eth0",
                    "network": BRIDGE,
                    "ipv4.address": "10.201.40.10",
                }
            },
        },
    )
    assert started.get("failed") is not True, started
    assert started["instance"]["ipv4"] == ["10.201.40.10"]
    checks = {
        "readlink /proc/1/exe": "systemd",
        "python3 --version": "Python 3.11",
        "test -s /etc/ssl/certs/ca-certificates.crt && echo bundle": "bundle",
        "test -e /usr/share/zoneinfo/UTC && echo tzdata": "tzdata",
        "command -v locale-gen": "/usr/sbin/locale-gen",
        "cat /etc/network/interfaces": "iface eth0 inet dhcp",
    }
    for command, expected in checks.items():
        out = incus_exec(PROJECT, INSTANCE, command).stdout
        assert expected in out, f"{command}: {out!r}"
