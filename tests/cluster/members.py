"""Two nested Incus hosts on one test bridge, to be formed into a cluster by `make apply`.

Each member is a privileged system container of the project's image with systemd as PID 1
(tests/helpers/nested_host.py builds it, and says why it is privileged), with its own address
on bridge `br-c-cluster` (10.152.0.0/24) in project `c-cluster`. The first member also runs
aistack (the controller, local socket); it reaches the second over ssh with a key made for
the test. The second member is an `incus copy` of the first, taken after the packages are
installed and before Incus exists on either: one apt run instead of two.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import nested_host as nested

PROJECT = "c-cluster"
BRIDGE = "br-c-cluster"
GATEWAY = "10.152.0.1/24"
FIRST, SECOND = "c1", "c2"
ADDRESSES = {FIRST: "10.152.0.11", SECOND: "10.152.0.12"}
SITES = {
    name: nested.Site(project=PROJECT, bridge=BRIDGE, gateway=GATEWAY, address=address,
                      name=name)
    for name, address in ADDRESSES.items()
}
IMAGE_ALIAS = "aistack/debian-12"


@dataclass
class Members:
    first: nested.NestedHost
    second: nested.NestedHost


def remove() -> None:
    nested.remove(SITES[FIRST])


def create(log_dir: Path) -> Members:
    nested.make_place(SITES[FIRST])
    first = nested.launch(log_dir, SITES[FIRST])
    nested.trust_host_cas(first)
    nested.install_new_user_tools(first, extra=("openssh-server",), log_prefix="cluster")
    # One key for the controller (the first member) to reach both members over ssh; the
    # copy carries it. An empty machine-id makes systemd give the copy its own at boot.
    first.run(
        "mkdir -p -m 0700 /root/.ssh && ssh-keygen -q -t ed25519 -N '' -f /root/.ssh/id_ed25519"
        " && cat /root/.ssh/id_ed25519.pub >> /root/.ssh/authorized_keys"
        " && chmod 0600 /root/.ssh/authorized_keys && : > /etc/machine-id"
    )
    nested.incus("stop", "--project", PROJECT, FIRST)
    nested.incus("copy", "--project", PROJECT, FIRST, SECOND,
                 "--device", f"eth0,ipv4.address={ADDRESSES[SECOND]}")
    for name in (FIRST, SECOND):
        nested.incus("start", "--project", PROJECT, name)
    second = nested.NestedHost(log_dir, SITES[SECOND])
    first.wait_booted()
    second.wait_booted()
    return Members(first, second)


def push_image(member: nested.NestedHost, scratch: Path) -> None:
    """The outer host's local image into the first member's Incus (instead of a second
    debootstrap; the fresh-host test covers the build)."""
    scratch.mkdir(parents=True, exist_ok=True)
    for old in scratch.glob("image*"):
        old.unlink()
    nested.incus("image", "export", IMAGE_ALIAS, str(scratch / "image"), "--project", "default")
    files = sorted(scratch.glob("image*"))
    names = []
    for path in files:
        member.push(path.read_bytes(), f"/root/{path.name}")
        names.append(f"/root/{path.name}")
    member.run(f"incus image import {' '.join(names)} --alias {IMAGE_ALIAS}"
               f" && rm {' '.join(names)}", timeout=600)
    for path in files:
        path.unlink()


def incus_json(member: nested.NestedHost, *args: str) -> object:
    return json.loads(member.run("incus " + " ".join(args) + " --format json").stdout)
