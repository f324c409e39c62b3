"""The incus_* modules against the real Incus daemon: create, re-run unchanged,
change a property, check mode, readable failures, delete."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from incus_harness import VENV_BIN, ansible_env, incus, query, run_module

pytestmark = pytest.mark.incus

PROJECT = "t-infra-mod"
BRIDGE = "br-ti-mod"
OTHER_BRIDGE = "br-ti-ovl"
INSTANCE = "t-infra-mod1"
IMAGE = "local:aistack/debian-12"
BRIDGE_CONFIG = {
    "ipv4.address": "10.201.30.1/24",
    "ipv4.nat": True,
    "ipv4.dhcp.ranges": "10.201.30.200-10.201.30.254",
    "ipv6.address": "none",
}
NIC = {"type": "nic", "name": "eth0", "network": BRIDGE, "ipv4.address": "10.201.30.10"}


def _cleanup() -> None:
    if query(f"/1.0/instances/{INSTANCE}?project={PROJECT}") is not None:
        incus(
            "config",
            "unset",
            INSTANCE,
            "security.protection.delete",
            "--project",
            PROJECT,
            check=False,
        )
        incus("delete", "--force", INSTANCE, "--project", PROJECT, check=False)
    if query(f"/1.0/projects/{PROJECT}") is not None:
        for prof in query(f"/1.0/profiles?project={PROJECT}") or []:
            name = prof.rsplit("/", 1)[-1].split("?")[0]
            if name != "default":
                incus("profile", "delete", name, "--project", PROJECT, check=False)
        incus("project", "delete", PROJECT, check=False)
    for net in (BRIDGE, OTHER_BRIDGE):
        incus("network", "delete", net, check=False)


@pytest.fixture(scope="module", autouse=True)
def clean_incus():
    _cleanup()
    yield
    _cleanup()


def test_project_lifecycle_and_check_mode():
    created = run_module(
        "incus_project",
        {
            "name": PROJECT,
            "description": "first",
            "config": {"features.profiles": True, "features.images": False},
        },
    )
    assert created["changed"] is True
    proj = query(f"/1.0/projects/{PROJECT}")
    assert proj["config"]["features.profiles"] == "true"
    assert proj["config"]["features.images"] == "false"

    again = run_module(
        "incus_project",
        {"name": PROJECT, "description": "first", "config": {"features.profiles": True}},
    )
    assert again["changed"] is False

    checked = run_module(
        "incus_project", {"name": PROJECT, "description": "second"}, check=True, diff=True
    )
    assert checked["changed"] is True
    assert checked["diff"]["after"]["description"] == "second"
    assert query(f"/1.0/projects/{PROJECT}")["description"] == "first"

    changed = run_module("incus_project", {"name": PROJECT, "description": "second"})
    assert changed["changed"] is True
    assert changed["changes"] == ["description"]
    assert query(f"/1.0/projects/{PROJECT}")["description"] == "second"


def test_network_lifecycle_and_overlap_refused():
    created = run_module("incus_network", {"name": BRIDGE, "config": BRIDGE_CONFIG})
    assert created["changed"] is True
    net = query(f"/1.0/networks/{BRIDGE}")
    assert net["config"]["ipv4.address"] == "10.201.30.1/24"
    assert net["config"]["ipv4.dhcp.ranges"] == "10.201.30.200-10.201.30.254"
    assert net["config"]["ipv4.nat"] == "true"

    assert (
        run_module("incus_network", {"name": BRIDGE, "config": BRIDGE_CONFIG})["changed"] is False
    )

    no_nat = dict(BRIDGE_CONFIG, **{"ipv4.nat": False})
    checked = run_module("incus_network", {"name": BRIDGE, "config": no_nat}, check=True)
    assert checked["changed"] is True
    assert query(f"/1.0/networks/{BRIDGE}")["config"]["ipv4.nat"] == "true"

    changed = run_module("incus_network", {"name": BRIDGE, "config": no_nat})
    assert changed["changes"] == ["config.ipv4.nat"]
    assert query(f"/1.0/networks/{BRIDGE}")["config"]["ipv4.nat"] == "false"
    run_module("incus_network", {"name": BRIDGE, "config": BRIDGE_CONFIG})

    overlap = run_module(
        "incus_network", {"name": OTHER_BRIDGE, "config": {"ipv4.address": "10.201.30.129/25"}}
    )
    assert overlap.get("failed") is True
    assert "overlaps subnet 10.201.30.0/24" in overlap["msg"]
    assert BRIDGE in overlap["msg"]
    assert query(f"/1.0/networks/{OTHER_BRIDGE}") is None


def test_profile_lifecycle_in_project():
    devices = {
        "root": {"type": "disk", "path": "/", "pool": "default"},
        "eth0": {"type": "nic", "name": "eth0", "network": BRIDGE},
    }
    default = run_module(
        "incus_profile", {"name": "default", "project": PROJECT, "devices": devices}
    )
    assert default["changed"] is True
    assert query(f"/1.0/profiles/default?project={PROJECT}")["devices"]["root"]["pool"] == "default"

    args = {"name": "tuning", "project": PROJECT, "config": {"limits.processes": 500}}
    assert run_module("incus_profile", args)["changed"] is True
    assert run_module("incus_profile", args)["changed"] is False
    assert query(f"/1.0/profiles/tuning?project={PROJECT}")["config"] == {"limits.processes": "500"}

    bigger = dict(args, config={"limits.processes": 800})
    assert run_module("incus_profile", bigger, check=True)["changed"] is True
    assert query(f"/1.0/profiles/tuning?project={PROJECT}")["config"]["limits.processes"] == "500"
    changed = run_module("incus_profile", bigger)
    assert changed["changes"] == ["config.limits.processes"]
    assert query(f"/1.0/profiles/tuning?project={PROJECT}")["config"]["limits.processes"] == "800"

    gone = run_module("incus_profile", {"name": "tuning", "project": PROJECT, "state": "absent"})
    assert gone["changed"] is True
    assert query(f"/1.0/profiles/tuning?project={PROJECT}") is None


def test_gpu_profile_carries_the_device_and_the_nvidia_runtime():
    args = {
        "name": "gpu",
        "project": PROJECT,
        "config": {"nvidia.runtime": True},
        "devices": {"gpu": {"type": "gpu"}},
    }
    assert run_module("incus_profile", args)["changed"] is True
    gpu = query(f"/1.0/profiles/gpu?project={PROJECT}")
    assert gpu["config"] == {"nvidia.runtime": "true"}
    assert gpu["devices"] == {"gpu": {"type": "gpu"}}
    assert run_module("incus_profile", args)["changed"] is False
    assert run_module("incus_profile", dict(args, state="absent"))["changed"] is True
    assert query(f"/1.0/profiles/gpu?project={PROJECT}") is None


def test_profile_in_missing_project_names_the_project():
    result = run_module("incus_profile", {"name": "x", "project": "t-infra-nowhere"})
    assert result.get("failed") is True
    assert "project 't-infra-nowhere' does not exist" in result["msg"]


def _instance_args(**overrides) -> dict:
    args = {
        "name": INSTANCE,
        "project": PROJECT,
        "image": IMAGE,
        "config": {"limits.memory": "512MiB", "security.protection.delete": True},
        "devices": {"eth0": NIC},
    }
    args.update(overrides)
    return args


def test_instance_lifecycle():
    checked = run_module("incus_instance", _instance_args(), check=True)
    assert checked["changed"] is True
    assert query(f"/1.0/instances/{INSTANCE}?project={PROJECT}") is None

    created = run_module("incus_instance", _instance_args())
    assert created["changed"] is True
    assert created["instance"]["ipv4"] == ["10.201.30.10"]
    inst = query(f"/1.0/instances/{INSTANCE}?project={PROJECT}")
    assert inst["status"] == "Running"
    assert inst["config"]["limits.memory"] == "512MiB"

    assert run_module("incus_instance", _instance_args())["changed"] is False

    bigger = _instance_args(config={"limits.memory": "768MiB", "security.protection.delete": True})
    assert run_module("incus_instance", bigger, check=True)["changed"] is True
    assert (
        query(f"/1.0/instances/{INSTANCE}?project={PROJECT}")["config"]["limits.memory"] == "512MiB"
    )
    changed = run_module("incus_instance", bigger)
    assert changed["changes"] == ["config.limits.memory"]
    assert (
        query(f"/1.0/instances/{INSTANCE}?project={PROJECT}")["config"]["limits.memory"] == "768MiB"
    )

    stopped = run_module("incus_instance", _instance_args(state="stopped"))
    assert stopped["changes"] == ["config.limits.memory", "status"]
    assert query(f"/1.0/instances/{INSTANCE}?project={PROJECT}")["status"] == "Stopped"

    refused = run_module(
        "incus_instance", {"name": INSTANCE, "project": PROJECT, "state": "absent"}
    )
    assert refused.get("failed") is True
    assert "protected against deletion" in refused["msg"]
    assert query(f"/1.0/instances/{INSTANCE}?project={PROJECT}") is not None

    removed = run_module(
        "incus_instance",
        {"name": INSTANCE, "project": PROJECT, "state": "absent", "force_delete": True},
    )
    assert removed["changed"] is True
    assert query(f"/1.0/instances/{INSTANCE}?project={PROJECT}") is None


def test_instance_missing_image_is_named():
    result = run_module("incus_instance", _instance_args(image="local:t-infra/no-such-image"))
    assert result.get("failed") is True
    assert "Image 'local:t-infra/no-such-image' not found" in result["msg"]
    assert query(f"/1.0/instances/{INSTANCE}?project={PROJECT}") is None


def test_instance_unknown_profile_is_named():
    result = run_module("incus_instance", _instance_args(profiles=["default", "no-such"]))
    assert result.get("failed") is True
    assert "Profile 'no-such'" in result["msg"]
    assert query(f"/1.0/instances/{INSTANCE}?project={PROJECT}") is None


def test_instance_target_on_a_standalone_server_is_refused_before_anything_exists():
    run_module("incus_project", {"name": PROJECT})
    result = run_module("incus_instance", _instance_args(target="gpu-box"))
    assert result.get("failed") is True
    assert "names cluster member 'gpu-box' (target), but the Incus server is not a cluster" in (
        result["msg"]
    )
    assert query(f"/1.0/instances/{INSTANCE}?project={PROJECT}") is None


def test_unreachable_daemon_is_a_sentence_not_a_traceback():
    result = run_module("incus_project", {"name": PROJECT, "url": "/nonexistent/unix.socket"})
    assert result.get("failed") is True
    assert result["msg"].startswith("Incus socket /nonexistent/unix.socket does not exist")
    assert "Traceback" not in str(result)


@pytest.mark.parametrize("prefix", ["unix:", "unix://"])
def test_unix_url_names_the_local_socket(prefix):
    """infra.yml's remote_url accepts unix:/path; the modules must reach Incus with it."""
    socket = next(p for p in ("/var/lib/incus/unix.socket", "/run/incus/unix.socket")
                  if os.path.exists(p))
    result = run_module("incus_project", {"name": "default", "url": prefix + socket})
    assert result.get("failed") is not True, result
    assert result["changed"] is False
    missing = run_module("incus_project", {"name": PROJECT, "url": prefix + "/nonexistent/s"})
    assert missing["msg"].startswith("Incus socket /nonexistent/s does not exist")


def test_unreachable_remote_and_half_given_credentials_are_named(tmp_path):
    bare = run_module("incus_project", {"name": PROJECT, "url": "https://127.0.0.1:9"})
    assert bare.get("failed") is True
    assert bare["msg"].startswith(
        "Incus at https://127.0.0.1:9 is reached over HTTPS, which needs a client certificate"
    )
    cert, key = tmp_path / "client.crt", tmp_path / "client.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-384", "-nodes", "-subj", "/CN=t", "-days", "1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    result = run_module("incus_project", {"name": PROJECT, "url": "https://127.0.0.1:9",
                                          "client_cert": str(cert), "client_key": str(key)})
    assert result.get("failed") is True
    assert result["msg"].startswith("Cannot reach Incus at https://127.0.0.1:9")
    half = run_module(
        "incus_project",
        {"name": PROJECT, "url": "https://127.0.0.1:9", "client_cert": str(cert)},
    )
    assert half.get("failed") is True
    assert half["msg"] == "client_cert and client_key must be given together."


def test_removal_of_project_and_bridge_leaves_nothing():
    assert run_module("incus_project", {"name": PROJECT, "state": "absent"})["changed"] is True
    assert query(f"/1.0/projects/{PROJECT}") is None
    assert run_module("incus_project", {"name": PROJECT, "state": "absent"})["changed"] is False
    assert run_module("incus_network", {"name": BRIDGE, "state": "absent"})["changed"] is True
    assert query(f"/1.0/networks/{BRIDGE}") is None


@pytest.mark.parametrize(
    "module", ["incus_project", "incus_network", "incus_profile", "incus_instance"]
)
def test_module_documentation_renders(module):
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-doc"), "--json", f"homelab.aistack.{module}"],
        capture_output=True,
        text=True,
        env=ansible_env(),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr

    doc = json.loads(proc.stdout)[f"homelab.aistack.{module}"]
    assert doc["doc"]["options"]["url"]["type"] == "str"
    assert doc["examples"].strip()
    assert doc["return"]
