"""What infra.yml may contain, and the typed model the validator builds from it.

The field tables are the single source for three consumers: the unknown-key
check (with its "did you mean"), docs/infra-yml.md (a test fails when a field
is missing there) and the validator itself, which takes every default from
them through ``default()``. A default of None means "none", or, where a
field's comment says so, a value inherited from elsewhere in the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .wyoming_lan import WyomingLan


@dataclass(frozen=True)
class Field:
    name: str
    kind: str
    required: bool = False
    default: Any = None


# Each section is a mapping in infra.yml; the key names the place in the file.
SECTIONS: dict[str, tuple[Field, ...]] = {
    "top": (
        Field("global", "mapping", required=True),
        Field("domains", "mapping of domain", required=True),
        Field("front_door", "mapping or null"),
        Field("cluster", "mapping or null"),
    ),
    "global": (
        Field("base_subnet", "string", required=True),
        Field("gpu_policy", "exclusive | shared", default="exclusive"),
        Field("default_image", "string", default="images:debian/12"),
        Field("image_build", "mapping or null"),
        Field("ca_certificates", "list of paths", default=()),
        Field("remote", "string", default="local"),
        Field("remote_url", "string or null"),
        Field("client_cert", "path or null"),
        Field("client_key", "path or null"),
        Field("server_cert", "path or null"),
        Field("remote_token", "string or null"),
        Field("storage_pool", "string", default="default"),
        Field("storage_driver", "string", default="dir"),
        Field("network_acls", "boolean", default=True),
    ),
    "image_build": (
        Field("alias", "string", default="aistack/debian-12"),
        Field("suite", "string", default="bookworm"),
        Field("mirror", "URL", default="http://deb.debian.org/debian"),
    ),
    "domain": (
        Field("description", "string", default=""),
        Field("subnet_id", "integer 0-255", required=True),
        Field("ephemeral", "boolean", default=False),
        Field("profiles", "mapping of profile", default={}),
        Field("machines", "mapping of machine", default={}),
    ),
    "profile": (
        Field("description", "string", default=""),
        Field("config", "mapping", default={}),
        Field("devices", "mapping", default={}),
    ),
    "machine": (
        Field("description", "string", default=""),
        Field("type", "lxc | vm", default="lxc"),
        Field("ip", "IPv4 address", required=True),
        Field("gpu", "false | true | GPU id | PCI address", default=False),
        Field("profiles", "list of profile names", default=()),
        Field("roles", "list of role names", default=()),
        Field("config", "mapping", default={}),
        Field("devices", "mapping", default={}),
        # None: the machine inherits global.default_image and its domain's ephemeral.
        Field("image", "string", default=None),
        Field("ephemeral", "boolean", default=None),
        Field("vars", "mapping", default={}),
        Field("wiring", "mapping", default={}),
        Field("allow", "mapping", default={}),
        Field("target", "cluster member name"),
        Field("wyoming_lan", "mapping or null"),
    ),
    "cluster": (Field("members", "mapping of member", required=True),),
    "member": (
        Field("address", "IPv4 address", required=True),
        Field("connection", "local | ssh"),
        Field("ssh_user", "string", default="root"),
    ),
    "front_door": (
        Field("enabled", "boolean", default=True),
        Field("machine", "machine name"),
        Field("listen", "list of IPv4 addresses", default=()),
        Field("https_port", "integer 1-65535", default=443),
        Field("stt_port", "integer 1-65535 or null"),
        Field("names", "list of DNS names or addresses", default=()),
        Field("certificate", "mapping or null"),
    ),
    "wyoming_lan": (
        Field("enabled", "boolean", default=True),
        Field("listen", "IPv4 address"),
        Field("port", "integer 1-65535", default=10300),
        Field("allow", "list of IPv4 networks"),
        Field("zeroconf", "boolean", default=True),
    ),
    "front_door_certificate": (
        Field("cert", "path", required=True),
        Field("key", "path", required=True),
    ),
    "wiring": (
        Field("ollama_server", "machine name"),
        Field("stt_server", "machine name"),
    ),
}

_DEFAULTS = {name: {f.name: f.default for f in fields} for name, fields in SECTIONS.items()}


def default(section: str, key: str) -> Any:
    """What the validator uses for ``key`` of ``section`` when infra.yml leaves it out."""
    return _DEFAULTS[section][key]


GPU_POLICIES = ("exclusive", "shared")
MACHINE_TYPES = ("lxc", "vm")
# Roles that run on the Incus host itself and so cannot be given to a machine.
HOST_ONLY_ROLES = frozenset({"incus_host"})
# Roles the generator gives to machines itself (the front door goes to the Open WebUI machine).
GENERATED_ROLES = frozenset({"front_door"})
# Variables the generator owns in host_vars; a machine's vars must not reuse them.
RESERVED_VARS = frozenset(
    {"aistack_instance", "aistack_roles", "aistack_domain", "aistack_wyoming_lan"}
)
DEFAULT_PORTS = {"ollama_server": 11434, "stt_server": 8000, "open_webui": 8080}
PORT_VARS = {"ollama_server": "ollama_server_port", "stt_server": "stt_server_port"}
GPU_PROFILE = "gpu"
DEFAULT_PROFILE = "default"


@dataclass(frozen=True)
class ImageBuild:
    alias: str
    suite: str
    mirror: str


@dataclass(frozen=True)
class GlobalSettings:
    base_subnet: str
    gpu_policy: str
    default_image: str
    image_build: ImageBuild | None
    ca_certificates: tuple[str, ...]
    remote: str
    remote_url: str | None
    client_cert: str | None
    client_key: str | None
    storage_pool: str
    storage_driver: str
    network_acls: bool = True
    server_cert: str | None = None
    remote_token: str | None = None


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    config: dict[str, str]
    devices: dict[str, dict[str, str]]


@dataclass(frozen=True)
class Gpu:
    """A machine's GPU request: any GPU, or one chosen by id or PCI address."""

    id: str | None = None
    pci: str | None = None


@dataclass(frozen=True)
class Allow:
    """Extra sources for one port of a machine (``allow:`` in infra.yml).

    ``role`` names the service when the key was a role, ``port`` is set when
    the key was a TCP port number; ``sources`` are machine names or IPv4 CIDRs.
    """

    role: str
    port: int | None
    sources: tuple[str, ...]


@dataclass(frozen=True)
class Machine:
    name: str
    domain: str
    description: str
    type: str
    ip: IPv4Address
    gpu: Gpu | None
    profiles: tuple[str, ...]
    roles: tuple[str, ...]
    config: dict[str, str]
    devices: dict[str, dict[str, str]]
    image: str
    ephemeral: bool
    vars: dict[str, Any]
    wiring: dict[str, str]
    needs_gpu: bool
    allow: tuple[Allow, ...] = ()
    # The cluster member the machine runs on (None: one host, or Incus picks).
    target: str | None = None
    # Wyoming published on the host's LAN address (wyoming_lan.py); None: not published.
    wyoming_lan: WyomingLan | None = None


@dataclass(frozen=True)
class Domain:
    name: str
    description: str
    subnet_id: int
    ephemeral: bool
    profiles: dict[str, Profile]
    machines: tuple[Machine, ...]


@dataclass(frozen=True)
class ClusterMember:
    """One Incus server of the cluster; the first member forms it, the others join."""

    name: str
    address: IPv4Address
    connection: str  # how Ansible reaches it: "local" (the controller) or "ssh"
    ssh_user: str


@dataclass(frozen=True)
class Cluster:
    members: tuple[ClusterMember, ...]

    def member(self, name: str) -> ClusterMember:
        return next(m for m in self.members if m.name == name)


@dataclass(frozen=True)
class Infra:
    settings: GlobalSettings
    domains: tuple[Domain, ...]
    machines: tuple[Machine, ...] = field(default=())
    cluster: Cluster | None = None

    def machine(self, name: str) -> Machine:
        return next(m for m in self.machines if m.name == name)
