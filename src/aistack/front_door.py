"""The HTTPS front door: how LAN devices reach Open WebUI (and, optionally, the STT API).

Browsers give the microphone only to a secure context, and the domain bridges are
NAT-only, so the stack needs a TLS endpoint on the Incus host's own addresses. The
generator checks the ``front_door:`` section of infra.yml and turns it into Incus
proxy devices on the Open WebUI machine (host port → nginx inside that machine)
plus the ``front_door_*`` variables of the role that configures nginx and the
certificate. Kept apart from validate.py so the door's rules live in one place.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, ip_address
from pathlib import Path
from typing import Any

from .loader import KeyPath
from .readers import Error, switched_on
from .schema import Infra, Machine, default

ROLE = "front_door"
WEBUI_ROLE = "open_webui"
STT_KEY_VAR = "stt_server_api_key"
ALL_ADDRESSES = IPv4Address("0.0.0.0")
# Inside the machine nginx listens on these ports; the proxy devices connect to them.
INNER_HTTPS_PORT = 443
INNER_STT_PORT = 8443
HTTPS_DEVICE = "aistack-https"
STT_DEVICE = "aistack-stt"
# A DNS name: labels of letters, digits and '-', not starting or ending with '-'.
_DNS_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True)
class FrontDoor:
    """A valid front_door section, resolved against the machines of infra.yml."""

    machine: str
    listen: tuple[IPv4Address, ...]
    https_port: int
    stt_port: int | None
    stt_upstream: str | None
    names: tuple[str, ...]
    cert_file: str | None
    key_file: str | None

    def listen_addresses(self) -> tuple[IPv4Address, ...]:
        return self.listen or (ALL_ADDRESSES,)


def dns_name_problem(name: object) -> str | None:
    """Why ``name`` cannot go into a certificate as a DNS name or IP address, or None."""
    if not isinstance(name, str) or not name:
        return f"{name!r} is not a name; write a DNS name like ai.home.arpa or an address"
    try:
        ip_address(name)
        return None
    except ValueError:
        pass
    text = name[:-1] if name.endswith(".") else name
    labels = text.split(".")
    if len(text) > 253 or not all(_DNS_LABEL.fullmatch(label) for label in labels):
        return (
            f"'{name}' is not a DNS name; use labels of letters, digits and '-' separated "
            "by dots (like ai.home.arpa), or an IP address"
        )
    if labels[-1].isdigit():
        return f"'{name}' looks like an address but is not one; write a DNS name or a valid IPv4"
    return None


def _port(value: Any, path: KeyPath, report: Error) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        report(path, f"{value!r} is not a TCP port; use a whole number 1–65535")
        return None
    return value


def _proxy_ports(devices: dict[str, dict[str, str]]) -> list[tuple[str, int]]:
    """(device, host port) of every proxy device that listens on the host."""
    found = []
    for name, device in devices.items():
        if device.get("type") != "proxy":
            continue
        match = re.match(r"^(?:tcp|udp):.*:(\d+)(?:-\d+)?$", device.get("listen", ""))
        if match:
            found.append((name, int(match.group(1))))
    return found


def _listeners() -> dict[int, set[int]]:
    """Port → inodes of the host's listening TCP sockets (IPv4 and IPv6)."""
    result: dict[int, set[int]] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A":  # LISTEN
                port = int(fields[1].rsplit(":", 1)[1], 16)
                result.setdefault(port, set()).add(int(fields[9]))
    return result


def _socket_owner(inodes: set[int]) -> tuple[int, str] | None:
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in wanted for fd in fds):
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                return int(pid), cmd.decode(errors="replace").strip()
        except OSError:
            continue
    return None


def host_port_holder(port: int) -> str | None:
    """Which process of this host listens on ``port``, or None when it is free.

    An Incus proxy device (``incusd forkproxy``) counts as free: it is the door of a
    previous apply, and Incus itself refuses a device whose port another one holds.
    """
    inodes = _listeners().get(port)
    if not inodes:
        return None
    owner = _socket_owner(inodes)
    if owner is None:
        return "a process this user cannot see"
    pid, cmd = owner
    if "forkproxy" in cmd:
        return None
    return f"{cmd.split(' ', 1)[0] or 'pid'} (pid {pid})"


def _certificate_problems(cert_file: str, key_file: str, now: dt.datetime) -> list[str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    except (OSError, ValueError) as err:
        return [f"{cert_file} is not a PEM certificate ({err}); give the server certificate"]
    problems = []
    if cert.not_valid_after_utc <= now:
        problems.append(
            f"{cert_file} expired on {cert.not_valid_after_utc:%Y-%m-%d}; renew it, or remove "
            "front_door.certificate to use the local CA"
        )
    try:
        key = serialization.load_pem_private_key(Path(key_file).read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as err:
        problems.append(f"{key_file} is not an unencrypted PEM private key ({err})")
        return problems
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    pem = serialization.Encoding.PEM
    if key.public_key().public_bytes(pem, spki) != cert.public_key().public_bytes(pem, spki):
        problems.append(
            f"{key_file} is not the key of {cert_file}; give the key the certificate was made for"
        )
    return problems


def _door_machine(
    infra: Infra, data: dict[str, Any], explicit: bool, report: Error
) -> Machine | None:
    webuis = [m for m in infra.machines if WEBUI_ROLE in m.roles]
    chosen = data.get("machine")
    if chosen is not None:
        match = next((m for m in webuis if m.name == chosen), None)
        if match is None:
            names = ", ".join(m.name for m in webuis) or "none"
            report(
                ("front_door", "machine"),
                f"machine '{chosen}' does not carry role {WEBUI_ROLE}; machines that do: {names}",
            )
        return match
    if len(webuis) == 1:
        return webuis[0]
    if not webuis:
        if explicit:
            report(
                ("front_door", "enabled"),
                f"the front door opens Open WebUI, and no machine has role {WEBUI_ROLE}; "
                "add the role to a machine or set front_door.enabled: false",
            )
        return None
    if not explicit:
        return None  # several Open WebUIs and no front_door section: the user picks one
    names = ", ".join(m.name for m in webuis)
    report(
        ("front_door", "machine"),
        f"several machines carry role {WEBUI_ROLE} ({names}); name the one the front "
        "door opens with front_door.machine, or set front_door.enabled: false",
    )
    return None


def check(
    value: Any,
    infra: Infra,
    stt_host: dict[str, str],
    report: Error,
    existing_file: Callable[[Any, KeyPath], str | None],
    port_holder: Callable[[int], str | None] = host_port_holder,
    now: dt.datetime | None = None,
) -> FrontDoor | None:
    """The front door infra.yml asks for (on by default), or None; problems go to ``report``.

    ``stt_host`` maps an Open WebUI machine to the STT machine the wiring chose for it.
    """
    path: KeyPath = ("front_door",)
    if value is not None and not isinstance(value, dict):
        report(path, "must be a mapping (see docs/infra-yml.md, front_door), or left out")
        return None
    data = value or {}
    if not switched_on("front_door", data, path, report):
        return None
    machine = _door_machine(infra, data, value is not None, report)

    listen: list[IPv4Address] = []
    raw_listen = data.get("listen")
    if raw_listen is not None and not isinstance(raw_listen, list):
        report(
            path + ("listen",), "must be a list of this host's IPv4 addresses, like [192.168.1.5]"
        )
    for index, item in enumerate(raw_listen if isinstance(raw_listen, list) else []):
        try:
            address = IPv4Address(str(item))
        except ValueError:
            report(path + ("listen", index), f"'{item}' is not an IPv4 address of this host")
            continue
        if address == ALL_ADDRESSES:
            listen = []
            break
        listen.append(address)

    https_port = _port(
        data.get("https_port", default("front_door", "https_port")), path + ("https_port",), report
    )
    stt_port = None
    if data.get("stt_port") is not None:
        stt_port = _port(data["stt_port"], path + ("stt_port",), report)
    if https_port is not None and https_port == stt_port:
        report(
            path + ("stt_port",), f"{stt_port} is also https_port; give the STT API its own port"
        )

    names: list[str] = []
    raw_names = data.get("names")
    if raw_names is not None and not isinstance(raw_names, list):
        report(path + ("names",), "must be a list of DNS names or addresses, like [ai.home.arpa]")
    for index, item in enumerate(raw_names if isinstance(raw_names, list) else []):
        problem = dns_name_problem(item)
        if problem:
            report(path + ("names", index), problem)
        elif str(item).lower() not in names:
            names.append(str(item).lower().rstrip("."))
    if infra.settings.remote != "local" and not names:
        report(
            path + ("names",),
            f"Incus runs on remote '{infra.settings.remote}', whose names this host cannot "
            "look up; list the names or addresses clients use to reach it",
        )

    cert_file = key_file = None
    certificate = data.get("certificate")
    if certificate is not None:
        where = path + ("certificate",)
        if not isinstance(certificate, dict) or set(certificate) - {"cert", "key"}:
            report(
                where,
                "must be a mapping {cert: <PEM file>, key: <PEM file>}, or null for the local CA",
            )
        elif not certificate.get("cert") or not certificate.get("key"):
            report(where, "needs both cert and key (PEM files on this host)")
        else:
            cert_file = existing_file(certificate["cert"], where + ("cert",))
            key_file = existing_file(certificate["key"], where + ("key",))
            if cert_file and key_file:
                moment = now or dt.datetime.now(dt.UTC)
                for problem in _certificate_problems(cert_file, key_file, moment):
                    report(where, problem)

    stt_upstream = None
    if machine is not None and stt_port is not None:
        stt_name = stt_host.get(machine.name)
        stt = next((m for m in infra.machines if m.name == stt_name), None)
        if stt is None:
            report(
                path + ("stt_port",),
                f"machine {machine.name} is not wired to an stt_server machine, so there is no "
                "STT API to open; remove stt_port",
            )
        else:
            # Without the key in vars, `aistack sync` generates one (secrets.py); only a key
            # turned off on purpose (an empty value) leaves the API open, so that is refused.
            if STT_KEY_VAR in stt.vars and not stt.vars[STT_KEY_VAR]:
                report(
                    path + ("stt_port",),
                    f"opening the STT API to the LAN needs an API key, but vars.{STT_KEY_VAR} "
                    f"of machine {stt.name} (domains.{stt.domain}.machines.{stt.name}.vars) "
                    "turns it off: remove that line to use the generated key, set a key, "
                    "or remove stt_port",
                )
            port = stt.vars.get("stt_server_port", 8000)
            stt_upstream = f"http://{stt.ip}:{port}"

    for port, key in ((https_port, "https_port"), (stt_port, "stt_port")):
        if port is None:
            continue
        for other in infra.machines:
            for device, used in _proxy_ports(other.devices):
                if used == port:
                    report(
                        path + (key,),
                        f"port {port} is already exposed by device {device} of machine "
                        f"{other.name}; choose another front_door.{key}",
                    )
        if infra.settings.remote == "local":
            holder = port_holder(port)
            if holder:
                report(
                    path + (key,),
                    f"port {port} on this host is taken by {holder}; stop it or choose "
                    f"another front_door.{key}",
                )

    if machine is None or https_port is None:
        return None
    return FrontDoor(
        machine=machine.name,
        listen=tuple(listen),
        https_port=https_port,
        stt_port=stt_port,
        stt_upstream=stt_upstream,
        names=tuple(names),
        cert_file=cert_file,
        key_file=key_file,
    )


def devices(door: FrontDoor) -> dict[str, dict[str, str]]:
    """Incus proxy devices: each host address and port → nginx inside the machine.

    The device's own connection reaches nginx from 127.0.0.1, so it sends the PROXY protocol
    header first: nginx learns the LAN client's address from it (and from nobody else), logs
    it and passes it on, and the per-client caps behind the door count real machines."""
    result: dict[str, dict[str, str]] = {}
    ports = [(HTTPS_DEVICE, door.https_port, INNER_HTTPS_PORT)]
    if door.stt_port is not None:
        ports.append((STT_DEVICE, door.stt_port, INNER_STT_PORT))
    addresses = door.listen_addresses()
    for device, port, inner in ports:
        for index, address in enumerate(addresses):
            name = device if len(addresses) == 1 else f"{device}-{index}"
            result[name] = {
                "type": "proxy",
                "listen": f"tcp:{address}:{port}",
                "connect": f"tcp:127.0.0.1:{inner}",
                "proxy_protocol": "true",
            }
    return result


def role_vars(door: FrontDoor) -> dict[str, Any]:
    """The front_door role's variables in the door machine's host_vars."""
    return {
        "front_door_listen": [str(a) for a in door.listen],
        "front_door_https_port": door.https_port,
        "front_door_names": list(door.names),
        "front_door_cert_file": door.cert_file or "",
        "front_door_key_file": door.key_file or "",
        "front_door_stt_port": door.stt_port or 0,
        "front_door_stt_upstream": door.stt_upstream or "",
    }
