"""An Incus cluster in infra.yml: its members, where machines run, and how they reach
each other.

A domain's bridge exists once per member, with the same subnet on each, but a bridge
does not span hosts: a machine on one member cannot reach the address of a machine on
another. A service consumed from another member is therefore published on its member's
own address by an Incus proxy device (``aistack-publish-<role>``, host address and
service port → the machine's address inside it), and the generator wires the consumer to
``http://<member address>:<port>``. The consumer's bridge lets that traffic out (the
network ACLs allow everything outside ``<base_subnet>.0.0/16``, and member addresses
must lie outside it); the proxy connects from inside the provider, so the provider's
ACL never sees it. What guards the published port is the service itself (the STT API
key) and the LAN it is on: see docs/architecture.md.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Callable
from ipaddress import AddressValueError, IPv4Address, IPv4Network
from typing import Any

from . import addressing
from .loader import KeyPath
from .readers import Error
from .schema import SECTIONS, Cluster, ClusterMember, Infra, Machine, default

CONNECTIONS = ("local", "ssh")
INVENTORY_GROUP = "incus_cluster"
PUBLISH_PREFIX = "aistack-publish-"
LOCAL_SOCKETS = ("/var/lib/incus/unix.socket", "/run/incus/unix.socket")


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


def live_members(timeout: float = 2.0) -> list[str] | None:
    """Member names of the Incus server on this host: [] when it is not a cluster, None
    when it cannot be asked (no daemon, no permission). Validation must not depend on
    Incus, so every failure here means "cannot tell"."""
    for path in LOCAL_SOCKETS:
        conn = _UnixConnection(path, timeout)
        try:
            conn.request("GET", "/1.0/cluster/members")
            response = conn.getresponse()
            body = json.loads(response.read() or b"{}")
        except (OSError, ValueError, http.client.HTTPException):
            continue
        finally:
            conn.close()
        if response.status != 200:
            # A standalone server answers that clustering is not enabled.
            return [] if "not clustered" in str(body.get("error", "")).lower() else None
        return [url.rstrip("/").rsplit("/", 1)[-1] for url in body.get("metadata") or []]
    return None


def check(
    value: Any, reserved: set[str], base_subnet: str, remote: str, error: Error
) -> Cluster | None:
    """The ``cluster:`` section; None when there is none (one host)."""
    if value is None:
        return None
    path: KeyPath = ("cluster",)
    if not isinstance(value, dict):
        error(path, f"must be a mapping with members, not {type(value).__name__}")
        return None
    members_value = value.get("members")
    if not isinstance(members_value, dict) or not members_value:
        error(
            path + ("members",),
            "must name at least one member, like members: {gpu-box: {address: 192.168.1.10}}",
        )
        return None
    stack = IPv4Network(f"{base_subnet}.0.0/16")
    members: list[ClusterMember] = []
    seen: dict[IPv4Address, str] = {}
    ok = True
    for index, (name, body) in enumerate(members_value.items()):
        where = path + ("members", str(name))
        member = _member(str(name), body, index == 0, where, reserved, stack, seen, error)
        if member is None:
            ok = False
        else:
            members.append(member)
    local = [m.name for m in members if m.connection == "local"]
    if len(local) > 1:
        error(
            path + ("members",),
            f"members {', '.join(local)} all say connection: local, but only the machine "
            "that runs aistack is local; set connection: ssh on the others",
        )
        ok = False
    if ok and not local and remote == "local":
        error(
            path + ("members",),
            "no member says connection: local, but the infrastructure play talks to the "
            "Incus of the host that runs aistack (global.remote: local); run aistack on a "
            "member and mark it connection: local",
        )
        ok = False
    return Cluster(tuple(members)) if ok else None


def _member(
    name: str,
    body: Any,
    first: bool,
    path: KeyPath,
    reserved: set[str],
    stack: IPv4Network,
    seen: dict[IPv4Address, str],
    error: Error,
) -> ClusterMember | None:
    problem = addressing.label_problem(name)
    if problem is None and name in reserved:
        problem = (
            f"'{name}' is also a domain, machine or Ansible group name; Ansible "
            "reaches members by name, so choose another"
        )
    if problem:
        error(path, problem)
        return None
    if not isinstance(body, dict):
        error(path, "must be a mapping with at least address, like {address: 192.168.1.10}")
        return None
    allowed = tuple(f.name for f in SECTIONS["member"])
    for key in body:
        if key not in allowed:
            error(path + (str(key),), f"unknown key '{key}'; allowed keys: {', '.join(allowed)}")
            return None
    raw = body.get("address")
    try:
        address = IPv4Address(str(raw).strip())
    except (AddressValueError, ValueError):
        error(
            path + ("address",),
            f"{raw!r} is not an IPv4 address; give the member's address on the LAN, "
            "like 192.168.1.10",
        )
        return None
    if address in stack:
        error(
            path + ("address",),
            f"{address} lies inside the stack's own range {stack} (global.base_subnet); "
            "give the member's address on the LAN, outside it",
        )
        return None
    if address in seen:
        error(path + ("address",), f"{address} is already the address of member {seen[address]}")
        return None
    seen[address] = name
    # No default in the schema: the first member is this host, the others are reached by ssh.
    connection = body.get("connection", "local" if first else "ssh")
    if connection not in CONNECTIONS:
        error(path + ("connection",), f"{connection!r} is not one of: {', '.join(CONNECTIONS)}")
        return None
    user = body.get("ssh_user", default("member", "ssh_user"))
    if not isinstance(user, str) or not user:
        error(path + ("ssh_user",), f"must be a user name, not {user!r}")
        return None
    return ClusterMember(name, address, connection, user)


def check_targets(
    infra: Infra,
    error: Error,
    live: Callable[[], list[str] | None] | None = None,
) -> None:
    """Every machine of a cluster names its member; a target names a member that exists.

    With a ``cluster:`` section the members are those it lists (they may not have joined
    yet). Without one a target is checked against the Incus server on this host when it
    answers, and accepted when it does not.
    """
    cluster = infra.cluster
    live_names: list[str] | None = None
    asked = False
    for machine in infra.machines:
        path: KeyPath = ("domains", machine.domain, "machines", machine.name, "target")
        if cluster is not None:
            names = [m.name for m in cluster.members]
            if machine.target is None:
                error(
                    path[:-1],
                    "infra.yml has a cluster, so every machine names the member it runs on "
                    f"(the wiring needs its address); add target: <one of {', '.join(names)}>",
                )
            elif machine.target not in names:
                error(path, _unknown_member(machine.target, names, "cluster.members"))
            continue
        if machine.target is None:
            continue
        if infra.settings.remote != "local":
            continue
        if not asked:
            live_names, asked = (live or live_members)(), True
        if live_names is None:
            continue
        if not live_names:
            error(
                path,
                f"target '{machine.target}' names a cluster member, but the Incus server on "
                "this host is not a cluster; add a cluster: section to form one, or remove "
                "target",
            )
        elif machine.target not in live_names:
            error(path, _unknown_member(machine.target, live_names, "the Incus cluster"))


def _unknown_member(target: str, names: list[str], where: str) -> str:
    import difflib  # error path only

    close = difflib.get_close_matches(target, names, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    return f"'{target}' is not a member of {where}; {hint}members: {', '.join(names)}"


def across_members(infra: Infra, consumer: Machine, provider: Machine) -> bool:
    return (
        infra.cluster is not None
        and consumer.target is not None
        and provider.target is not None
        and consumer.target != provider.target
    )


def reachable_host(infra: Infra, consumer: Machine, provider: Machine) -> str:
    """The address the consumer reaches the provider at: the provider's own address on
    the same member (or one host), its member's address from another member."""
    if across_members(infra, consumer, provider):
        assert infra.cluster is not None and provider.target is not None
        return str(infra.cluster.member(provider.target).address)
    return str(provider.ip)


def publish_device(
    infra: Infra, provider: Machine, role: str, port: int
) -> tuple[str, dict[str, str]]:
    """The proxy device that publishes a provider's port on its member's address."""
    assert infra.cluster is not None and provider.target is not None
    address = infra.cluster.member(provider.target).address
    return f"{PUBLISH_PREFIX}{role.replace('_', '-')}", {
        "type": "proxy",
        "listen": f"tcp:{address}:{port}",
        "connect": f"tcp:{provider.ip}:{port}",
        "bind": "host",
    }


def inventory(cluster: Cluster) -> dict[str, Any]:
    """The members as Ansible hosts, the first (which forms the cluster) first."""
    hosts: dict[str, Any] = {}
    for member in cluster.members:
        if member.connection == "local":
            hosts[member.name] = {
                "ansible_connection": "local",
                "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                "aistack_cluster_address": str(member.address),
            }
        else:
            hosts[member.name] = {
                "ansible_connection": "ssh",
                "ansible_host": str(member.address),
                "ansible_user": member.ssh_user,
                "ansible_python_interpreter": "/usr/bin/python3",
                "aistack_cluster_address": str(member.address),
            }
    return {INVENTORY_GROUP: {"hosts": hosts}}


def as_vars(cluster: Cluster | None) -> dict[str, Any] | None:
    if cluster is None:
        return None
    return {
        "members": [
            {"name": m.name, "address": str(m.address), "connection": m.connection}
            for m in cluster.members
        ]
    }
