"""Nested hosts: privileged system containers of the project's Debian 12 image, with
systemd as PID 1, that stand in for hosts which never saw the project.

tests/fresh_host (a new user's host), tests/remote (a second Incus server) and tests/cluster
(two cluster members) build theirs here, each at its own `Site` (project, bridge, address,
name), so the tests with nested hosts never share anything. A nested host receives what a
new host has and nothing more: the repository as `git archive HEAD`, the tools the README
asks for, and the outer host's CA trust (a host behind a TLS-intercepting proxy has that
CA installed already). What the three tests do inside their hosts alike lives here too:
keeping or removing the hosts after a run, timing a `make` step into a log, and posting a
spoken sentence to the STT service with the standard library.

Why the container is privileged, with cgroups mounted read-write: these test machines boot
with cgroup v1 (hybrid). An unprivileged container sees the v1 controllers read-only, so
the containers Incus starts inside it fail at `forkstart` ("Failed to open 9/cpuacct").
`security.privileged=true` with `lxc.mount.auto = cgroup:rw:force` lets the nested liblxc
create its cgroups; `security.nesting=true` lets it mount /proc and /sys for them.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
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


@dataclass
class NestedHost:
    """The nested host; `run` executes a shell command in it as root, in a login shell."""

    log_dir: Path
    site: Site

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


def remove(site: Site) -> None:
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


def make_place(site: Site) -> None:
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


def create(log_dir: Path, site: Site) -> NestedHost:
    """A new project and bridge with one nested host in them, booted."""
    make_place(site)
    return launch(log_dir, site)


def launch(log_dir: Path, site: Site) -> NestedHost:
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
    host = NestedHost(log_dir, site)
    host.wait_booted()
    return host


def trust_host_cas(host: NestedHost) -> None:
    """Install the outer host's CA trust, as a host behind an intercepting proxy has it."""
    host.push(Path("/etc/ssl/certs/ca-certificates.crt").read_bytes(),
              "/usr/local/share/ca-certificates/outer-host-bundle.crt")
    for crt in sorted(Path("/usr/local/share/ca-certificates").glob("*.crt")):
        host.push(crt.read_bytes(), f"/usr/local/share/ca-certificates/outer-{crt.name}")
    host.run("update-ca-certificates >/dev/null")


def install_new_user_tools(host: NestedHost, extra: tuple[str, ...] = (),
                           log_prefix: str = "fresh") -> None:
    host.run("until apt-get update -q; do sleep 3; done", timeout=300,
             log=f"{log_prefix}-apt.log")
    host.run("DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
             + " ".join(STANDARD + README_TOOLS + list(extra)), timeout=900,
             log=f"{log_prefix}-apt-install.log")


def copy_repository(host: NestedHost, root: Path) -> None:
    """The repository as `git archive HEAD`: nothing untracked or built comes along."""
    archive = subprocess.run(["git", "archive", "--format=tar", "HEAD"], cwd=root,
                             capture_output=True, check=True).stdout
    host.push(archive, "/root/aistack.tar")
    host.run(f"mkdir -p {CHECKOUT} && tar -xf /root/aistack.tar -C {CHECKOUT}")


def ci_packages(root: Path) -> list[str]:
    """The Debian packages .ci/run installs before `make test`, read from .ci/run itself so
    that a nested host playing a CI machine gets exactly those."""
    text = (root / ".ci" / "run").read_text().replace("\\\n", " ")
    found = re.search(r"apt-get install -y -q --no-install-recommends ([^>\n]+)", text)
    assert found, "no `apt-get install ... --no-install-recommends` line in .ci/run"
    return found.group(1).split()


def install_ci_packages(host: NestedHost, root: Path, log_prefix: str) -> None:
    """What .ci/run installs, the way it installs it (no recommends)."""
    host.run("DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "
             + " ".join(ci_packages(root)), timeout=900, log=f"{log_prefix}-ci-packages.log")


@contextlib.contextmanager
def kept_for_diagnosis(keep_env: str, remove_hosts: Callable[[], None]) -> Iterator[None]:
    """Remove a test's nested hosts when the block ends, unless `keep_env` is "1" (the
    hosts stay for `incus exec ... -- bash`)."""
    try:
        yield
    finally:
        if os.environ.get(keep_env) != "1":
            remove_hosts()


def make(host: NestedHost, args: str, log: str, env: str = "", timeout: float = 3600
         ) -> subprocess.CompletedProcess[str]:
    """`make ARGS` in the host's checkout (`env`: variables put before it), its output in
    `log` followed by a line with the exit status and the seconds it took."""
    started = time.monotonic()
    result = host.run(f"cd {CHECKOUT} && {env} make {args}", timeout=timeout, log=log,
                      check=False)
    note = f"make {args}: exit {result.returncode} after {time.monotonic() - started:.0f} s"
    with (host.log_dir / log).open("a") as fh:
        fh.write(f"\n{note}\n")
    print(note)
    return result


def python_command(script: str) -> str:
    """A shell word that runs `script` with python3 (base64: no quoting to get wrong)."""
    encoded = base64.b64encode(script.encode()).decode()
    return f"python3 -c \"$(echo {encoded} | base64 -d)\""


# A multipart POST of /root/command.wav with Python's standard library (the image has no
# curl): argv[1] is the transcriptions URL, argv[2] the API key make apply generated.
TRANSCRIBE = python_command(r"""
import json, sys, urllib.request, uuid
audio = open("/root/command.wav", "rb").read()
b = uuid.uuid4().hex
body = (f"--{b}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
        f"--{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"c.wav\"\r\n"
        f"Content-Type: audio/wav\r\n\r\n").encode() + audio + f"\r\n--{b}--\r\n".encode()
req = urllib.request.Request(sys.argv[1], data=body,
                             headers={"Content-Type": f"multipart/form-data; boundary={b}",
                                      "Authorization": f"Bearer {sys.argv[2]}"})
print(urllib.request.urlopen(req, timeout=300).read().decode())
""")


def api_key(host: NestedHost, key_file: str) -> str:
    """The STT key from its lookup file in the host (which may carry a salt after it)."""
    return host.run(f"cat {key_file}").stdout.split()[0]


def words(text: str) -> list[str]:
    """Lower-case words without punctuation, to compare what was heard with what was said."""
    return "".join(c.lower() if c.isalnum() or c.isspace() else " " for c in text).split()
