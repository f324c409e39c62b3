# Copyright: aistack developers
# Apache License 2.0 (see galaxy.yml)
"""Connection to the Incus REST API through pylxd, shared by the incus_* modules.

The modules talk to the low-level API tree of pylxd (``client.api``) rather than
its object models: the models hide which fields changed, and idempotence needs
exactly that. Every API failure is turned into an ``IncusError`` whose message
says what was asked and what Incus answered, so a module can fail with a
sentence instead of a traceback.
"""

from __future__ import annotations

import ipaddress
import os
import time
import traceback

try:
    from pylxd import Client
    from pylxd import exceptions as pylxd_exceptions
    from pylxd.client import get_session_for_url

    PYLXD_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - reported by require_pylxd()
    Client = None
    pylxd_exceptions = None
    get_session_for_url = None
    PYLXD_IMPORT_ERROR = traceback.format_exc()

DEFAULT_SOCKETS = ("/var/lib/incus/unix.socket", "/run/incus/unix.socket")

# Keys Incus writes by itself into an instance's config; they are never compared.
VOLATILE_PREFIXES = ("volatile.", "image.")


class IncusError(Exception):
    """A failure a user can act on; the message is shown as the module's msg."""


def connection_argument_spec() -> dict:
    """Options every incus_* module accepts to reach the daemon."""
    return {
        "url": {"type": "str"},
        "client_cert": {"type": "path", "aliases": ["cert_file"]},
        "client_key": {"type": "path", "aliases": ["key_file"]},
        "server_cert": {"type": "path"},
        "validate_certs": {"type": "bool", "default": True},
        "timeout": {"type": "int", "default": 120},
    }


def require_pylxd(module) -> None:
    if PYLXD_IMPORT_ERROR is not None:
        module.fail_json(
            msg="The Python library pylxd is required on the controller: "
            "install it into the Python that runs Ansible (make setup does).",
            exception=PYLXD_IMPORT_ERROR,
        )


def _default_socket() -> str:
    if os.environ.get("INCUS_DIR"):
        return os.path.join(os.environ["INCUS_DIR"], "unix.socket")
    for path in DEFAULT_SOCKETS:
        if os.path.exists(path):
            return path
    return DEFAULT_SOCKETS[0]


def _socket_path(url: str) -> str:
    """`unix:/path` and `unix:///path` (Incus's own spelling) name a socket path."""
    if url.startswith("unix://"):
        return url[len("unix://"):] or _default_socket()
    if url.startswith("unix:"):
        return url[len("unix:"):] or _default_socket()
    return url


class IncusApi:
    """Thin typed wrapper over pylxd's API tree: get, create, update, delete."""

    def __init__(self, params: dict):
        url = _socket_path(params.get("url") or _default_socket())
        self.timeout = params.get("timeout") or 120
        cert = None
        verify: bool | str = True
        if url.startswith("/"):
            if not os.path.exists(url):
                raise IncusError(
                    f"Incus socket {url} does not exist: is incusd running on this host? "
                    "Start it (playbooks/host.yml does) or set url to a remote."
                )
        else:
            if params.get("client_cert") or params.get("client_key"):
                if not (params.get("client_cert") and params.get("client_key")):
                    raise IncusError("client_cert and client_key must be given together.")
                cert = (params["client_cert"], params["client_key"])
            elif url.startswith("https://"):
                raise IncusError(
                    f"Incus at {url} is reached over HTTPS, which needs a client certificate: "
                    "give client_cert and client_key (a pair the server trusts)."
                )
            # A path pins the server's own certificate (pylxd compares fingerprints, as the
            # incus CLI does with servercerts/); without one the system CAs must vouch for it.
            if params.get("server_cert"):
                verify = params["server_cert"]
            else:
                verify = bool(params.get("validate_certs", True))
        try:
            kwargs = {}
            if isinstance(verify, str):
                # requests lets REQUESTS_CA_BUNDLE (set where a proxy intercepts TLS) replace
                # a session's verify path, which would swap the pinned certificate for the
                # proxy's bundle; a session that ignores the environment keeps the pin.
                session = get_session_for_url(url, verify=verify, cert=cert)
                session.trust_env = False
                kwargs["session"] = session
            self.client = Client(endpoint=url, cert=cert, verify=verify, timeout=self.timeout,
                                 **kwargs)
        except Exception as exc:  # pylxd raises several unrelated types here
            if "certificate" in str(exc).lower() or "fingerprint" in str(exc).lower():
                raise IncusError(
                    f"Incus at {url} presents a TLS certificate this controller does not "
                    "trust: give server_cert (the server's own /var/lib/incus/server.crt, "
                    f"pinned) or a trust token, which carries its fingerprint. ({exc})"
                ) from exc
            raise IncusError(f"Cannot reach Incus at {url}: {exc}") from exc
        # True when this connection added the client to the server's trust (a token).
        self.trusted_by_token = False
        if self.client.host_info.get("auth") != "trusted" and params.get("trust_token"):
            self.trusted_by_token = True
            # The server takes the certificate from the TLS handshake and the name from the
            # token; pylxd's authenticate() also sends an empty name, which Incus refuses.
            try:
                self.client.api.certificates.post(
                    json={"type": "client", "trust_token": params["trust_token"]}
                )
                self.client.host_info = self.client.api.get().json()["metadata"]
            except Exception as exc:
                raise IncusError(
                    f"Incus at {url} refused the trust token ({exc}): tokens are single-use "
                    "and expire; make a new one on the server with "
                    "`incus config trust add <client name>`."
                ) from exc
        if self.client.host_info.get("auth") != "trusted":
            raise IncusError(
                f"Incus at {url} does not trust this client: add the client certificate "
                "with `incus config trust add-certificate` on the server, or give a trust "
                "token (`incus config trust add <client name>` on the server)."
            )
        self.url = url

    # -- generic REST helpers -------------------------------------------------

    def _node(self, path: str):
        node = self.client.api
        for part in path.strip("/").split("/"):
            node = node[part]
        return node

    @staticmethod
    def _params(project: str | None, extra: dict | None = None) -> dict:
        params = dict(extra or {})
        if project:
            params["project"] = project
        return params

    def _call(self, what: str, method: str, path: str, project=None, body=None, params=None):
        node = self._node(path)
        kwargs = {"params": self._params(project, params)}
        if body is not None:
            kwargs["json"] = body
        try:
            response = getattr(node, method)(**kwargs)
        except pylxd_exceptions.LXDAPIException as exc:
            raise IncusError(f"{what} failed: {exc}") from exc
        except Exception as exc:  # connection errors from requests
            raise IncusError(f"{what} failed: {exc}") from exc
        data = response.json() if response.content else {}
        if data.get("type") == "async":
            return self._wait(what, data)
        return data.get("metadata")

    def _wait(self, what: str, data: dict):
        op_id = data["operation"].rstrip("/").split("/")[-1]
        deadline = time.monotonic() + self.timeout
        while True:
            left = max(1, int(deadline - time.monotonic()))
            try:
                resp = self.client.api.operations[op_id].wait.get(params={"timeout": left})
            except pylxd_exceptions.LXDAPIException as exc:
                raise IncusError(f"{what} failed: {exc}") from exc
            meta = resp.json().get("metadata") or {}
            status = meta.get("status")
            if status == "Success":
                return meta.get("metadata")
            if status in ("Failure", "Cancelled"):
                raise IncusError(f"{what} failed: {meta.get('err') or status}")
            if time.monotonic() >= deadline:
                raise IncusError(f"{what} did not finish within {self.timeout} s.")

    def get(self, path: str, project: str | None = None, params: dict | None = None):
        """The object at path, or None when Incus answers 404."""
        try:
            return self._node(path).get(params=self._params(project, params)).json()["metadata"]
        except pylxd_exceptions.NotFound:
            return None
        except pylxd_exceptions.LXDAPIException as exc:
            raise IncusError(f"Reading {path} failed: {exc}") from exc
        except Exception as exc:
            raise IncusError(f"Reading {path} failed: {exc}") from exc

    def post(self, what: str, path: str, body: dict, project: str | None = None,
             params: dict | None = None):
        return self._call(what, "post", path, project, body, params)

    def put(self, what: str, path: str, body: dict, project: str | None = None):
        return self._call(what, "put", path, project, body)

    def patch(self, what: str, path: str, body: dict, project: str | None = None):
        return self._call(what, "patch", path, project, body)

    def delete(self, what: str, path: str, project: str | None = None):
        return self._call(what, "delete", path, project)

    # -- shared checks --------------------------------------------------------

    def project_exists(self, project: str) -> bool:
        return self.get(f"projects/{project}") is not None

    def require_project(self, project: str) -> None:
        if not self.project_exists(project):
            raise IncusError(
                f"Incus project '{project}' does not exist: create it first "
                "(homelab.aistack.incus_project)."
            )

    def cluster_members(self) -> list[str] | None:
        """Names of the cluster's members in Incus's order, or None when the server
        is not clustered (a standalone server answers /1.0/cluster with enabled false)."""
        cluster = self.get("cluster") or {}
        if not cluster.get("enabled"):
            return None
        members = self.get("cluster/members", params={"recursion": "1"}) or []
        return [m["server_name"] for m in members]

    def managed_networks(self) -> list[dict]:
        nets = self.get("networks", params={"recursion": "1", "all-projects": "true"}) or []
        return [n for n in nets if n.get("managed")]


def network_of(address: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The subnet of an Incus address setting like 10.0.0.1/24 (None for auto/none)."""
    if not address or address in ("none", "auto"):
        return None
    try:
        return ipaddress.ip_interface(address).network
    except ValueError:
        return None


def stringify(mapping: dict | None) -> dict:
    """Incus stores every config value as a string; compare them as such."""
    out = {}
    for key, value in (mapping or {}).items():
        if isinstance(value, bool):
            out[str(key)] = "true" if value else "false"
        elif value is None:
            out[str(key)] = ""
        else:
            out[str(key)] = str(value)
    return out


def stringify_devices(devices: dict | None) -> dict:
    return {str(name): stringify(dev) for name, dev in (devices or {}).items()}


def run_module(module, body) -> None:
    """Run body(api) and turn IncusError into fail_json without a traceback."""
    require_pylxd(module)
    try:
        api = IncusApi(module.params)
        body(api)
    except IncusError as exc:
        module.fail_json(msg=str(exc))
