#!/usr/bin/python
# Copyright: aistack developers
# Apache License 2.0 (see galaxy.yml)
"""Ansible module: a remote Incus server, known to this controller's Incus client."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import ssl
from urllib.parse import urlsplit

DOCUMENTATION = r"""
module: incus_remote
short_description: Make a remote Incus server usable from this controller
version_added: 0.2.0
description:
  - Prepares everything the controller needs to drive a remote Incus server, with
    the same identity for the C(homelab.aistack.incus_*) modules (pylxd) and for
    the C(community.general.incus) connection (the C(incus) CLI).
  - The client certificate and key are created once when neither file exists
    (an ECDSA P-384 pair, the key mode C(0600)); a half pair is an error.
  - The server's certificate is pinned from O(server_cert), or fetched and
    checked against the fingerprint a O(trust_token) carries, or kept from an
    earlier run (C(servercerts/NAME.crt)). Without any of them, the server's
    certificate must be signed by a CA of the system.
  - When the server does not trust the client yet, the O(trust_token) adds the
    client certificate to its trust store; without a token the module fails
    saying how to trust the certificate on the server.
  - Writes the remote into the Incus client's configuration of the user running
    Ansible (C($INCUS_CONF), else C(~/.config/incus)) the way C(incus remote add)
    does, in C(config.yml), C(servercerts/NAME.crt) and the per-remote client
    certificate C(clientcerts/NAME.crt) and C(.key). Other remotes are left alone.
  - A C(unix:) URL writes only the remote entry (no certificates).
author: aistack developers
options:
  name:
    description: Remote name, as C(incus remote list) and C(ansible_incus_remote) call it.
    type: str
    required: true
  url:
    description: C(https://host:8443) or C(unix:/path/to/unix.socket).
    type: str
    required: true
  client_cert:
    description: Client certificate (PEM); created with O(client_key) when both are missing.
    type: path
  client_key:
    description: Key of O(client_cert); kept at mode C(0600).
    type: path
  server_cert:
    description: The server's certificate (PEM), pinned by fingerprint.
    type: path
  trust_token:
    description:
      - Token from C(incus config trust add NAME) on the server. Used only while the
        server does not trust the client yet; tokens are single-use.
    type: str
  client_name:
    description: Common name of a generated client certificate.
    type: str
    default: aistack
  config_dir:
    description: Incus client configuration directory; default C($INCUS_CONF) or C(~/.config/incus).
    type: path
  timeout:
    description: Seconds to wait for the server.
    type: int
    default: 30
requirements:
  - pylxd and cryptography (on the controller, in the Python that runs Ansible)
notes:
  - Supports check mode (reports what it would write; never contacts the trust endpoint).
"""

EXAMPLES = r"""
- name: Make the remote gpu-box usable (first run with a trust token)
  homelab.aistack.incus_remote:
    name: gpu-box
    url: https://192.168.1.20:8443
    client_cert: .aistack/incus-client/client.crt
    client_key: .aistack/incus-client/client.key
    trust_token: "{{ gpu_box_token }}"
  no_log: true
"""

RETURN = r"""
client_cert:
  description: Client certificate the modules should use.
  returned: always
  type: str
client_key:
  description: Key of RV(client_cert).
  returned: always
  type: str
server_cert:
  description: The pinned server certificate, or null when the system CAs vouch for it.
  returned: always
  type: str
changes:
  description: What was written (C(client_certificate), C(server_certificate), C(trust), C(config)).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.homelab.aistack.plugins.module_utils.incus_api import (  # noqa: E402
    IncusApi,
    IncusError,
    require_pylxd,
)

try:
    import yaml
except ImportError:  # pragma: no cover - Ansible itself depends on PyYAML
    yaml = None


def _config_dir(given: str | None) -> str:
    if given:
        return given
    if os.environ.get("INCUS_CONF"):
        return os.environ["INCUS_CONF"]
    return os.path.join(os.path.expanduser("~"), ".config", "incus")


def _write(path: str, data: bytes, mode: int) -> bool:
    """Write data when it differs; always leave the mode as asked. True when written."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    if os.path.exists(path):
        with open(path, "rb") as fh:
            same = fh.read() == data
        if same:
            if os.stat(path).st_mode & 0o777 != mode:
                os.chmod(path, mode)
            return False
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path + ".tmp", mode)
    os.replace(path + ".tmp", path)
    return True


def _generate_pair(common_name: str) -> tuple[bytes, bytes]:
    """A self-signed client pair like the one the incus CLI makes for itself."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA384())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _token_fingerprint(token: str) -> str:
    """The server fingerprint a trust token carries (base64 of a JSON object)."""
    try:
        padded = token.strip() + "=" * (-len(token.strip()) % 4)
        data = json.loads(base64.b64decode(padded))
        return str(data["fingerprint"]).lower()
    except (ValueError, KeyError, TypeError) as exc:
        raise IncusError(
            "trust_token is not an Incus trust token: copy the whole token that "
            "`incus config trust add <client name>` printed on the server."
        ) from exc


def _fetch_server_cert(url: str, timeout: int) -> bytes:
    """The certificate the server presents; trusted only after the fingerprint check."""
    parts = urlsplit(url)
    try:
        pem = ssl.get_server_certificate((parts.hostname, parts.port or 8443), timeout=timeout)
    except OSError as exc:  # timeouts included
        raise IncusError(f"Cannot reach Incus at {url}: {exc}") from exc
    return pem.encode()


def _fingerprint(pem: bytes) -> str:
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem.decode())).hexdigest()


def _remote_entry(url: str) -> dict:
    if url.startswith("unix:"):
        path = url.split(":", 1)[1].lstrip("/")
        return {"addr": f"unix:///{path}" if path else "unix://", "protocol": "incus",
                "public": False}
    return {"addr": url.rstrip("/"), "auth_type": "tls", "protocol": "incus", "public": False}


def _client_config(path: str, name: str, entry: dict) -> bytes | None:
    """config.yml with the remote set as asked, or None when it already is."""
    config: dict = {}
    if os.path.exists(path):
        with open(path) as fh:
            config = yaml.safe_load(fh) or {}
    else:
        # What the CLI writes for itself the first time; kept so `local` stays the default.
        config = {
            "default-remote": "local",
            "remotes": {
                "images": {"addr": "https://images.linuxcontainers.org",
                           "protocol": "simplestreams", "public": True},
                "local": {"addr": "unix://", "protocol": "incus", "public": False},
            },
            "aliases": {},
        }
    remotes = config.setdefault("remotes", {}) or {}
    config["remotes"] = remotes
    current = remotes.get(name) or {}
    if all(current.get(k) == v for k, v in entry.items()):
        return None
    remotes[name] = {**current, **entry}
    return yaml.safe_dump(config, default_flow_style=False, sort_keys=True).encode()


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "url": {"type": "str", "required": True},
            "client_cert": {"type": "path"},
            "client_key": {"type": "path", "no_log": False},
            "server_cert": {"type": "path"},
            "trust_token": {"type": "str", "no_log": True},
            "client_name": {"type": "str", "default": "aistack"},
            "config_dir": {"type": "path"},
            "timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=True,
    )
    require_pylxd(module)
    p = module.params
    name, url = p["name"], p["url"]
    conf = _config_dir(p["config_dir"])
    changes: list[str] = []
    check = module.check_mode
    try:
        if name == "local" or "/" in name or ":" in name:
            raise IncusError(
                f"Remote name '{name}' cannot be used: 'local' is this host's own socket, and "
                "a name may not hold '/' or ':'."
            )
        if url.startswith("unix:"):
            if not check and _write_config(conf, name, _remote_entry(url)):
                changes.append("config")
            module.exit_json(changed=bool(changes), changes=changes, client_cert=None,
                             client_key=None, server_cert=None)
        if not url.startswith("https://"):
            raise IncusError(
                f"'{url}' is not an Incus address: use https://host:8443 or unix:/path."
            )

        cert, key = p["client_cert"], p["client_key"]
        if not cert or not key:
            raise IncusError("client_cert and client_key must both be given.")
        have = (os.path.exists(cert), os.path.exists(key))
        if have == (False, False):
            if not check:
                cert_pem, key_pem = _generate_pair(p["client_name"])
                _write(key, key_pem, 0o600)
                _write(cert, cert_pem, 0o644)
            changes.append("client_certificate")
        elif have != (True, True):
            missing = cert if not have[0] else key
            raise IncusError(
                f"{missing} is missing while its pair exists: restore it, or remove both "
                "files to have a new client certificate made (the server must then trust it)."
            )
        elif os.stat(key).st_mode & 0o077:
            os.chmod(key, 0o600)

        server_pem = None
        if p["server_cert"]:
            with open(p["server_cert"], "rb") as fh:
                server_pem = fh.read()
        elif p["trust_token"]:
            expected = _token_fingerprint(p["trust_token"])
            server_pem = _fetch_server_cert(url, p["timeout"])
            if _fingerprint(server_pem) != expected:
                raise IncusError(
                    f"Incus at {url} presents a certificate with fingerprint "
                    f"{_fingerprint(server_pem)}, but the trust token names {expected}: "
                    "the address reaches another server (or a man in the middle). Check "
                    "remote_url and make the token on that server."
                )
        pinned = os.path.join(conf, "servercerts", f"{name}.crt")
        if server_pem is None and os.path.exists(pinned):
            # Pinned by an earlier run (or by `incus remote add`): the token is spent by now.
            with open(pinned, "rb") as fh:
                server_pem = fh.read()
        if server_pem is None:
            pinned = None
        if pinned and not check and _write(pinned, server_pem, 0o644):
            changes.append("server_certificate")

        # Check mode spends no token and writes nothing, so the modules after this one
        # could not reach a server this controller never connected to: say so, once.
        if check and (have != (True, True) or (pinned and not os.path.exists(pinned))):
            raise IncusError(
                f"Check mode cannot show remote '{name}' yet: this controller has never "
                "connected to it (no client certificate or pinned server certificate). "
                "Run make apply once (with the trust token), then make check."
            )
        api = IncusApi({
            "url": url, "client_cert": cert, "client_key": key,
            "server_cert": pinned, "validate_certs": True, "timeout": p["timeout"],
            "trust_token": None if check else p["trust_token"],
        })
        if api.trusted_by_token:
            changes.append("trust")

        if not check:
            with open(cert, "rb") as fh:
                cert_pem_now = fh.read()
            with open(key, "rb") as fh:
                key_pem_now = fh.read()
            wrote = _write(os.path.join(conf, "clientcerts", f"{name}.crt"), cert_pem_now, 0o644)
            wrote = _write(os.path.join(conf, "clientcerts", f"{name}.key"), key_pem_now,
                           0o600) or wrote
            if _write_config(conf, name, _remote_entry(url)) or wrote:
                changes.append("config")
    except IncusError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=bool(changes), changes=changes, client_cert=cert,
                     client_key=key, server_cert=pinned)


def _write_config(conf: str, name: str, entry: dict) -> bool:
    path = os.path.join(conf, "config.yml")
    data = _client_config(path, name, entry)
    return data is not None and _write(path, data, 0o600)


if __name__ == "__main__":
    main()
