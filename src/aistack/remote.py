"""What a remote Incus server's address and trust token look like.

The validator uses these to report a bad `global.remote_url` or `global.remote_token`
at its line; the incus_remote module reads the same token format on the controller.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from urllib.parse import urlsplit

_REMOTE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


def remote_name_ok(name: str) -> bool:
    """A name the Incus client accepts before `:` in `<remote>:<instance>`."""
    return bool(_REMOTE_NAME.fullmatch(name))


def remote_url_problem(url: str) -> str | None:
    """Why `url` cannot reach an Incus daemon, or None when it can be tried."""
    if url.startswith("unix:"):
        path = url[len("unix:"):]
        if path.startswith("//"):
            path = path[2:]
        if path and not path.startswith("/"):
            return (f"'{url}' names a socket by a relative path; write unix:/var/lib/incus/"
                    "unix.socket (an absolute path)")
        return None
    if url.startswith("https://"):
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            return f"'{url}' has a port that is not a number from 1 to 65535; write https://host:8443"
        if not parts.hostname:
            return f"'{url}' names no host; write https://host:8443"
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            return f"'{url}' has a path; the Incus API is the address alone: https://{parts.netloc}"
        if port == 0:
            return f"'{url}' has port 0; Incus listens on 8443 unless told otherwise"
        return None
    if url.startswith("http://"):
        return (f"'{url}' is plain HTTP; Incus serves its API over HTTPS only: "
                "write https://" + url[len("http://"):])
    return f"'{url}' is not an Incus address; use https://host:8443 or unix:/path/to/unix.socket"


def token_fingerprint(token: str) -> str | None:
    """The server fingerprint a trust token carries, or None when it is no token."""
    text = token.strip()
    try:
        data = json.loads(base64.b64decode(text + "=" * (-len(text) % 4), validate=True))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    fingerprint = str(data.get("fingerprint", "")).lower()
    if not _FINGERPRINT.fullmatch(fingerprint) or not data.get("secret"):
        return None
    return fingerprint
