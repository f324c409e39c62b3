"""A second Incus server for the remote test: incusd in a nested system container.

The container is built by tests/helpers/nested_host.py (systemd as PID 1, privileged, cgroups
read-write: see there why) in its own project `r-remote` on bridge `br-r-remote`
(10.151.0.0/24). Incus comes from bookworm-backports through the outer host's mirrors,
as on a new Debian 12 host; the server listens for the API on its bridge address
and trusts nobody until the test hands a trust token to the controller.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import nested_host as nested

SITE = nested.Site(project="r-remote", bridge="br-r-remote", gateway="10.151.0.1/24",
                   address="10.151.0.10", name="remote")
PORT = 8443
URL = f"https://{SITE.address}:{PORT}"

BACKPORTS = """Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""

# Storage only: the bridge and everything else come from infra.yml through the modules.
PRESEED = f"""config:
  core.https_address: "{SITE.address}:{PORT}"
storage_pools:
- name: default
  driver: dir
"""


def install_incus(server: nested.NestedHost) -> None:
    """Incus (containers only) from bookworm-backports, started by systemd, listening on
    its address."""
    nested.trust_host_cas(server)
    server.push(BACKPORTS.encode(), "/etc/apt/sources.list.d/backports.sources")
    server.run("until apt-get update -q; do sleep 3; done", timeout=300, log="remote-apt.log")
    # incus-base is the container-only daemon: the full `incus` package also pulls QEMU
    # for virtual machines, four times the download for nothing this test uses.
    server.run("DEBIAN_FRONTEND=noninteractive apt-get install -y -q -t bookworm-backports "
               "incus-base", timeout=900, log="remote-apt-install.log")
    server.run("systemctl start incus.service && incus admin waitready --timeout 120",
               timeout=180)
    server.push(PRESEED.encode(), "/root/preseed.yml")
    server.run("incus admin init --preseed < /root/preseed.yml", timeout=120)


def trust_token(server: nested.NestedHost, client_name: str) -> str:
    """A one-time token from the server that lets one client add its certificate."""
    out = server.run(f"incus config trust add {client_name} --quiet").stdout
    return out.strip().splitlines()[-1]


def state(server: nested.NestedHost) -> dict:
    """What the server holds, read on the server itself (not through the controller)."""
    def read(what: str) -> list:
        return json.loads(server.run(f"incus {what} --format json").stdout)

    return {
        "projects": sorted(p["name"] for p in read("project list")),
        "networks": sorted(n["name"] for n in read("network list") if n.get("managed")),
        "instances": sorted(f"{i['project']}/{i['name']}" for i in read("list --all-projects")),
        "images": sorted(a["name"] for i in read("image list") for a in i.get("aliases", [])),
        "trusted": sorted(c["name"] for c in read("config trust list")),
    }


def load(log_dir: Path) -> nested.NestedHost:
    return nested.NestedHost(log_dir, SITE)
