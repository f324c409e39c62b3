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
  - Supports check mode and diff mode. Check mode writes nothing (no file, no mode)
    and never contacts the trust endpoint; it reports what a run would write. The
    diff names each file with its mode (and, for certificates and config.yml, its
    SHA-256), and the remote's entry in C(config.yml); a key is shown by its mode only.
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
  description:
    - What was (in check mode, would be) written - C(client_certificate),
      C(client_key_mode) (group or other access taken away from the key),
      C(server_certificate), C(trust), C(config).
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
from ansible_collections.homelab.aistack.plugins.module_utils.incus_client_config import (  # noqa: E402
    ClientFiles,
    config_dir,
    remote_entry,
)


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


def _client_pair(p: dict, files: ClientFiles, changes: list[str]) -> bool:
    """Make the client pair when neither file exists; keep the key private.
    True when the pair existed before this run."""
    cert, key = p["client_cert"], p["client_key"]
    if not cert or not key:
        raise IncusError("client_cert and client_key must both be given.")
    have = (os.path.exists(cert), os.path.exists(key))
    if have == (False, False):
        if not files.check:
            cert_pem, key_pem = _generate_pair(p["client_name"])
            files.write(key, key_pem, 0o600, secret=True)
            files.write(cert, cert_pem, 0o644)
        changes.append("client_certificate")
        return False
    if have != (True, True):
        missing = cert if not have[0] else key
        raise IncusError(
            f"{missing} is missing while its pair exists: restore it, or remove both "
            "files to have a new client certificate made (the server must then trust it)."
        )
    if files.private(key):
        changes.append("client_key_mode")
    return True


def _server_pem(p: dict, pinned: str) -> bytes | None:
    """The server certificate to pin: given, fetched and checked against the trust
    token, or pinned by an earlier run; None when the system CAs must vouch."""
    url = p["url"]
    if p["server_cert"]:
        with open(p["server_cert"], "rb") as fh:
            return fh.read()
    if p["trust_token"]:
        expected = _token_fingerprint(p["trust_token"])
        server_pem = _fetch_server_cert(url, p["timeout"])
        if _fingerprint(server_pem) != expected:
            raise IncusError(
                f"Incus at {url} presents a certificate with fingerprint "
                f"{_fingerprint(server_pem)}, but the trust token names {expected}: "
                "the address reaches another server (or a man in the middle). Check "
                "remote_url and make the token on that server."
            )
        return server_pem
    if os.path.exists(pinned):
        # Pinned by an earlier run (or by `incus remote add`): the token is spent by now.
        with open(pinned, "rb") as fh:
            return fh.read()
    return None


def _remote(p: dict, files: ClientFiles, changes: list[str]) -> str | None:
    """Everything an https:// remote needs; returns the pinned server certificate's path."""
    name, url, check = p["name"], p["url"], files.check
    conf = config_dir(p["config_dir"])
    had_pair = _client_pair(p, files, changes)
    pinned: str | None = os.path.join(conf, "servercerts", f"{name}.crt")
    server_pem = _server_pem(p, pinned)
    if server_pem is None:
        pinned = None
    elif files.write(pinned, server_pem, 0o644):
        changes.append("server_certificate")

    # Check mode spends no token and writes nothing, so the modules after this one
    # could not reach a server this controller never connected to: say so, once.
    if check and (not had_pair or (pinned and not os.path.exists(pinned))):
        raise IncusError(
            f"Check mode cannot show remote '{name}' yet: this controller has never "
            "connected to it (no client certificate or pinned server certificate). "
            "Run make apply once (with the trust token), then make check."
        )
    cert, key = p["client_cert"], p["client_key"]
    api = IncusApi({
        "url": url, "client_cert": cert, "client_key": key,
        "server_cert": pinned, "validate_certs": True, "timeout": p["timeout"],
        "trust_token": None if check else p["trust_token"],
    })
    if api.trusted_by_token:
        changes.append("trust")
        files.before["trust"], files.after["trust"] = "not trusted", "trusted (token)"

    with open(cert, "rb") as fh:
        cert_pem = fh.read()
    with open(key, "rb") as fh:
        key_pem = fh.read()
    wrote = files.write(os.path.join(conf, "clientcerts", f"{name}.crt"), cert_pem, 0o644)
    wrote = files.write(os.path.join(conf, "clientcerts", f"{name}.key"), key_pem, 0o600,
                        secret=True) or wrote
    if files.remote(conf, name, remote_entry(url)) or wrote:
        changes.append("config")
    return pinned


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
    files = ClientFiles(module.check_mode)
    changes: list[str] = []
    cert = key = pinned = None
    try:
        if name == "local" or "/" in name or ":" in name:
            raise IncusError(
                f"Remote name '{name}' cannot be used: 'local' is this host's own socket, and "
                "a name may not hold '/' or ':'."
            )
        if url.startswith("unix:"):
            if files.remote(config_dir(p["config_dir"]), name, remote_entry(url)):
                changes.append("config")
        elif url.startswith("https://"):
            cert, key = p["client_cert"], p["client_key"]
            pinned = _remote(p, files, changes)
        else:
            raise IncusError(
                f"'{url}' is not an Incus address: use https://host:8443 or unix:/path."
            )
    except IncusError as exc:
        module.fail_json(msg=str(exc))
    module.exit_json(changed=bool(changes), changes=changes, diff=files.diff(),
                     client_cert=cert, client_key=key, server_cert=pinned)


if __name__ == "__main__":
    main()
