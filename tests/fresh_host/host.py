"""A nested system container that stands in for a newly installed Debian 12 host.

The container runs the project's Debian 12 image with systemd as PID 1, in its own Incus
project (`f-fresh`) on its own bridge (10.150.0.0/24, so the example's 10.100.10.0/24 inside
it never meets a bridge of the outer host). It receives what a new user has and nothing
more: the repository as `git archive HEAD`, the tools the README asks for, and the outer
host's CA trust (a host behind a TLS-intercepting proxy has that CA installed already).
tests/remote builds its second Incus server and tests/cluster its two members the same
way, each at another `Site` (project, bridge, address, name).

Why the container is privileged, with cgroups mounted read-write: these test machines boot
with cgroup v1 (hybrid). An unprivileged container sees the v1 controllers read-only, so
the containers Incus starts inside it fail at `forkstart` ("Failed to open 9/cpuacct").
`security.privileged=true` with `lxc.mount.auto = cgroup:rw:force` lets the nested liblxc
create its cgroups; `security.nesting=true` lets it mount /proc and /sys for them.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

IMAGE = "local:aistack/debian-12"
CHECKOUT = "/root/aistack"

# Packages of a standard Debian install (reportbug pulls in python3-apt: the apt module
# then opens the cache itself instead of installing python3-apt after an update), plus
# what the README asks a user to install.
STANDARD = ["python3-apt", "reportbug"]
README_TOOLS = ["make", "git", "python3-venv"]


def incus(*args: str, check: bool = True, input: bytes | None = None,
          timeout: float | None = 600) -> subprocess.CompletedProcess[bytes]:
    stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run(["incus", *args], capture_output=True, check=check, timeout=timeout,
                          **stdin)


@dataclass(frozen=True)
class Site:
    """Where one nested host lives on the outer host: its own project and bridge, so the
    tests with nested hosts (fresh host, remote Incus, cluster) never share anything. The
    members of tests/cluster share a project and bridge, with their own names and addresses."""

    project: str
    bridge: str
    gateway: str
    address: str
    name: str


FRESH = Site(project="f-fresh", bridge="br-f-fresh", gateway="10.150.0.1/24",
             address="10.150.0.10", name="fresh")


@dataclass
class FreshHost:
    """The nested host; `run` executes a shell command in it as root, in a login shell."""

    log_dir: Path
    site: Site = FRESH

    def run(self, script: str, timeout: float = 600, log: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = ["incus", "exec", "--project", self.site.project, self.site.name, "--",
               "bash", "-lc", script]
        if log is None:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        else:
            path = self.log_dir / log
            with path.open("w") as fh:
                proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, text=True,
                                      timeout=timeout, stdin=subprocess.DEVNULL)
            proc.stdout = path.read_text()
        if check and proc.returncode != 0:
            raise AssertionError(
                f"in the nested host {self.site.name}, `{script}` exited {proc.returncode}:\n"
                f"{(proc.stdout or '')[-4000:]}\n{(proc.stderr or '')[-2000:]}"
            )
        return proc

    def push(self, data: bytes, dest: str, mode: str = "0644") -> None:
        incus("file", "push", "--project", self.site.project, "--mode", mode, "-",
              f"{self.site.name}{dest}", input=data)

    def wait_booted(self) -> None:
        """Wait for systemd to finish booting the container."""
        deadline = time.monotonic() + 180
        while True:
            state = self.run("systemctl is-system-running --wait", check=False, timeout=180)
            if state.stdout.strip() in {"running", "degraded"}:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"systemd in {self.site.name} did not finish booting: {state}")
            time.sleep(2)


def remove(site: Site = FRESH) -> None:
    """Delete the project, its instance and the bridge, if a run left them."""
    projects = json.loads(incus("project", "list", "--format", "json").stdout)
    if any(p["name"] == site.project for p in projects):
        listed = incus("list", "--project", site.project, "--format", "json").stdout
        for inst in json.loads(listed):
            incus("delete", "--project", site.project, "--force", inst["name"])
        incus("project", "delete", site.project)
    networks = json.loads(incus("network", "list", "--format", "json").stdout)
    if any(n["name"] == site.bridge for n in networks):
        incus("network", "delete", site.bridge)


def make_place(site: Site = FRESH) -> None:
    """A fresh project and bridge for nested hosts (what a run left is removed first)."""
    remove(site)
    # Kernel modules belong to the kernel the container shares: the nested host cannot
    # load br_netfilter (its network ACLs need it) from its own /lib/modules, which has
    # none for this kernel. A real host loads it itself (playbooks/infra.yml).
    if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        subprocess.run(["modprobe", "br_netfilter"], check=True)
    incus("network", "create", site.bridge, f"ipv4.address={site.gateway}", "ipv4.nat=true",
          "ipv6.address=none")
    incus("project", "create", site.project, "--config", "features.images=false",
          "--config", "features.profiles=true")


def create(log_dir: Path, site: Site = FRESH) -> FreshHost:
    """A new project and bridge with one nested host in them, booted."""
    make_place(site)
    return launch(log_dir, site)


def launch(log_dir: Path, site: Site) -> FreshHost:
    """A privileged nested system container of the project's image at `site`, booted."""
    spec = {
        "config": {
            "security.nesting": "true",
            "security.privileged": "true",
            "raw.lxc": "lxc.mount.auto = cgroup:rw:force",
        },
        "devices": {
            "root": {"type": "disk", "path": "/", "pool": "default"},
            "eth0": {"type": "nic", "name": "eth0", "network": site.bridge,
                     "ipv4.address": site.address},
        },
    }
    incus("init", IMAGE, site.name, "--project", site.project, input=json.dumps(spec).encode())
    incus("start", "--project", site.project, site.name)
    host = FreshHost(log_dir, site)
    host.wait_booted()
    return host


def trust_host_cas(host: FreshHost) -> None:
    """Install the outer host's CA trust, as a host behind an intercepting proxy has it."""
    host.push(Path("/etc/ssl/certs/ca-certificates.crt").read_bytes(),
              "/usr/local/share/ca-certificates/outer-host-bundle.crt")
    for crt in sorted(Path("/usr/local/share/ca-certificates").glob("*.crt")):
        host.push(crt.read_bytes(), f"/usr/local/share/ca-certificates/outer-{crt.name}")
    host.run("update-ca-certificates >/dev/null")


def install_new_user_tools(host: FreshHost, extra: tuple[str, ...] = (),
                           log_prefix: str = "fresh") -> None:
    host.run("until apt-get update -q; do sleep 3; done", timeout=300,
             log=f"{log_prefix}-apt.log")
    host.run("DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
             + " ".join(STANDARD + README_TOOLS + list(extra)), timeout=900,
             log=f"{log_prefix}-apt-install.log")


def copy_repository(host: FreshHost, root: Path) -> None:
    """The repository as `git archive HEAD`: nothing untracked or built comes along."""
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=root,
                             capture_output=True, check=True).stdout
    host.push(archive, "/root/aistack.tar")
    host.run(f"mkdir -p {CHECKOUT} && tar -xf /root/aistack.tar -C {CHECKOUT}")
