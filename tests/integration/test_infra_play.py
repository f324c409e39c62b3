"""playbooks/infra.yml and playbooks/destroy.yml on a one-domain, two-machine
inventory (fixtures/infra, the shape `aistack sync` writes): the machines come
up ready for provisioning, a re-run changes nothing, check mode touches
nothing, bad input fails before anything is created, destroy leaves nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from incus_harness import (
    FIXTURES,
    ROOT,
    incus,
    incus_exec,
    playbook,
    query,
    recap,
    state_snapshot,
)

pytestmark = pytest.mark.incus

INVENTORY = FIXTURES / "infra" / "inventory"
PROJECT = "t-infra-lab"
BRIDGE = "br-ti-lab"
MACHINES = {"t-infra-ai": "10.201.20.10", "t-infra-web": "10.201.20.20"}


def snapshot() -> dict:
    return state_snapshot([PROJECT], [BRIDGE])


def destroy() -> None:
    playbook("playbooks/destroy.yml", INVENTORY)


@pytest.fixture(scope="module")
def infra():
    """The fixture infrastructure, applied once; destroyed at the end in any case."""
    destroy()
    assert snapshot() == {"projects": {PROJECT: None}, "networks": {BRIDGE: None}}
    checked = playbook("playbooks/infra.yml", INVENTORY, check=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # Check mode on an empty host: nothing was created.
    assert snapshot() == {"projects": {PROJECT: None}, "networks": {BRIDGE: None}}
    first = playbook("playbooks/infra.yml", INVENTORY)
    assert first.returncode == 0, first.stdout + first.stderr
    yield first
    if snapshot() != {"projects": {PROJECT: None}, "networks": {BRIDGE: None}}:
        destroy()


def test_machines_run_with_their_static_addresses(infra):
    for name, ip in MACHINES.items():
        state = query(f"/1.0/instances/{name}/state?project={PROJECT}")
        assert state["status"] == "Running"
        addrs = [
            a["address"] for a in state["network"]["eth0"]["addresses"] if a["family"] == "inet"
        ]
        assert addrs == [ip]


def test_domain_objects_follow_the_inventory(infra):
    proj = query(f"/1.0/projects/{PROJECT}")
    assert proj["config"]["features.images"] == "false"
    assert proj["config"]["features.profiles"] == "true"
    net = query(f"/1.0/networks/{BRIDGE}")
    assert net["config"]["ipv4.address"] == "10.201.20.1/24"
    assert net["config"]["ipv4.nat"] == "true"
    assert net["config"]["ipv4.dhcp.ranges"] == "10.201.20.200-10.201.20.254"
    assert net["config"]["ipv6.address"] == "none"
    default = query(f"/1.0/profiles/default?project={PROJECT}")
    assert default["devices"]["root"] == {"type": "disk", "path": "/", "pool": "default"}
    assert default["devices"]["eth0"]["network"] == BRIDGE
    assert query(f"/1.0/profiles/tuning?project={PROJECT}")["config"] == {
        "limits.processes": "2000"
    }
    ai = query(f"/1.0/instances/t-infra-ai?project={PROJECT}")
    assert ai["profiles"] == ["default", "tuning"]
    assert ai["config"]["limits.memory"] == "1GiB"
    assert ai["config"]["boot.autostart"] == "true"
    assert ai["config"]["security.protection.delete"] == "true"


def test_machines_trust_the_host_cas_and_reach_apt(infra):
    host_bundle = Path("/etc/ssl/certs/ca-certificates.crt").read_text()
    last_cert = host_bundle.strip().split("-----BEGIN CERTIFICATE-----")[-1].strip()
    for name in MACHINES:
        bundle = incus_exec(PROJECT, name, "cat /etc/ssl/certs/ca-certificates.crt").stdout
        assert last_cert in bundle, f"{name}: host CA missing from the container bundle"
        pip_conf = incus_exec(PROJECT, name, "cat /etc/pip.conf").stdout
        assert "cert = /etc/ssl/certs/ca-certificates.crt" in pip_conf
        env = incus_exec(PROJECT, name, "cat /etc/environment").stdout
        assert "REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt" in env
        assert "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt" in env
        assert incus_exec(PROJECT, name, "python3 -c 'print(1)'").stdout.strip() == "1"
        policy = incus_exec(PROJECT, name, "apt-cache policy python3").stdout
        assert "deb.debian.org" in policy


def test_second_run_changes_nothing(infra):
    again = playbook("playbooks/infra.yml", INVENTORY)
    assert again.returncode == 0, again.stdout + again.stderr
    counts = recap(again.stdout)
    assert set(counts) == {"localhost", *MACHINES}
    assert all(c["changed"] == 0 and c["failed"] == 0 for c in counts.values()), counts


def test_check_mode_reports_drift_and_changes_nothing(infra):
    incus("config", "set", "t-infra-web", "limits.memory", "300MiB", "--project", PROJECT)
    before = snapshot()
    # As `make check` does: the host part and the infrastructure part, in check mode.
    checked = playbook(
        "playbooks/host.yml", INVENTORY, str(ROOT / "playbooks" / "infra.yml"), check=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert snapshot() == before
    assert recap(checked.stdout)["localhost"]["changed"] == 1
    assert "limits.memory: 300MiB" in checked.stdout
    fixed = playbook("playbooks/infra.yml", INVENTORY)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    web = query(f"/1.0/instances/t-infra-web?project={PROJECT}")
    assert "limits.memory" not in web["config"]


def _edit(path: Path, change) -> None:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data))


def _variant(tmp_path: Path, change, images: dict[str, str] | None = None) -> Path:
    """A copy of the inventory with `change` made to group_vars/all and each machine named in
    `images` given that image."""
    inv = tmp_path / "inventory"
    shutil.copytree(INVENTORY, inv)
    for machine, image in (images or {}).items():
        _edit(inv / "host_vars" / f"{machine}.yml",
              lambda data, image=image: data["aistack_instance"].update(image=image))
    _edit(inv / "group_vars" / "all.yml", change)
    return inv


def _move_domain(name: str, bridge: str, **network):
    """A change of group_vars/all: the test domain renamed `name` (its project too), on the
    bridge `bridge` with `network`, so that nothing it creates is the test domain's."""

    def change(data: dict) -> None:
        dom = data["aistack_domains"].pop(PROJECT)
        dom.update(name=name, project=name, bridge=bridge, **network)
        data["aistack_domains"][name] = dom

    return change


def test_overlapping_subnet_fails_before_anything_is_created(infra, tmp_path):
    overlap = _move_domain("t-infra-ovl", "br-ti-ovl", gateway="10.201.20.129", netmask_bits=25)
    before = snapshot()
    run = playbook("playbooks/infra.yml", _variant(tmp_path, overlap))
    assert run.returncode != 0
    assert "overlaps subnet 10.201.20.0/24 of network 'br-ti-lab'" in run.stdout
    assert query("/1.0/projects/t-infra-ovl") is None
    assert query("/1.0/networks/br-ti-ovl") is None
    assert snapshot() == before


def test_missing_image_fails_before_anything_is_created(tmp_path):
    rename = _move_domain(
        "t-infra-img", "br-ti-img", gateway="10.201.21.1", subnet="10.201.21.0/24"
    )
    inv = _variant(tmp_path, rename, images={"t-infra-web": "local:t-infra/no-such-image"})
    run = playbook("playbooks/infra.yml", inv)
    assert run.returncode != 0
    assert "Machine t-infra-web uses image local:t-infra/no-such-image" in run.stdout
    assert query("/1.0/projects/t-infra-img") is None
    assert query("/1.0/networks/br-ti-img") is None


def test_unreachable_image_server_fails_once_before_anything_is_created(tmp_path):
    """This host cannot reach images.linuxcontainers.org: one message, with the fix."""
    rename = _move_domain(
        "t-infra-srv", "br-ti-srv", gateway="10.201.22.1", subnet="10.201.22.0/24"
    )
    inv = _variant(tmp_path, rename, images={name: "images:debian/12" for name in MACHINES})
    run = playbook("playbooks/infra.yml", inv)
    assert run.returncode != 0
    assert run.stdout.count("but its image server does not answer from this host") == 1
    assert "machine t-infra-ai, machine t-infra-web use image images:debian/12" in run.stdout
    assert "global.default_image: local:aistack/debian-12 and global.image_build" in run.stdout
    assert "no such host" in run.stdout
    assert query("/1.0/projects/t-infra-srv") is None
    assert query("/1.0/networks/br-ti-srv") is None


def test_destroy_leaves_nothing_behind(infra):
    gone = playbook("playbooks/destroy.yml", INVENTORY)
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert snapshot() == {"projects": {PROJECT: None}, "networks": {BRIDGE: None}}
    assert not [
        i
        for i in query("/1.0/instances?all-projects=true") or []
        if "/t-infra-ai" in i or "/t-infra-web" in i
    ]
    again = playbook("playbooks/destroy.yml", INVENTORY)
    assert again.returncode == 0, again.stdout + again.stderr
    assert recap(again.stdout)["localhost"]["changed"] == 0
