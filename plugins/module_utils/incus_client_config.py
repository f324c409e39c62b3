# Copyright: aistack developers
# Apache License 2.0 (see galaxy.yml)
"""The controller's Incus client configuration, as incus_remote keeps it.

`incus remote add` writes config.yml, servercerts/NAME.crt and (per remote)
clientcerts/NAME.crt and .key; incus_remote writes the same files. Every write
goes through ``ClientFiles``: a file is written only when its content or mode
differs, nothing is written in check mode, and each difference is recorded as a
before/after pair for --diff. A key file is shown by its mode only, never by
its content or a digest of it.
"""

from __future__ import annotations

import hashlib
import os

try:
    import yaml
except ImportError:  # pragma: no cover - Ansible itself depends on PyYAML
    yaml = None


def config_dir(given: str | None) -> str:
    if given:
        return given
    if os.environ.get("INCUS_CONF"):
        return os.environ["INCUS_CONF"]
    return os.path.join(os.path.expanduser("~"), ".config", "incus")


def remote_entry(url: str) -> dict:
    if url.startswith("unix:"):
        path = url.split(":", 1)[1].lstrip("/")
        return {"addr": f"unix:///{path}" if path else "unix://", "protocol": "incus",
                "public": False}
    return {"addr": url.rstrip("/"), "auth_type": "tls", "protocol": "incus", "public": False}


def _read_config(path: str) -> dict:
    if os.path.exists(path):
        with open(path) as fh:
            return yaml.safe_load(fh) or {}
    # What the CLI writes for itself the first time; kept so `local` stays the default.
    return {
        "default-remote": "local",
        "remotes": {
            "images": {"addr": "https://images.linuxcontainers.org",
                       "protocol": "simplestreams", "public": True},
            "local": {"addr": "unix://", "protocol": "incus", "public": False},
        },
        "aliases": {},
    }


def _describe(path: str, secret: bool, data: bytes | None = None, mode: int | None = None) -> str:
    """A file as the diff shows it: its mode and, unless it is secret, a digest."""
    if data is None:
        if not os.path.exists(path):
            return "absent"
        mode = os.stat(path).st_mode & 0o777
        with open(path, "rb") as fh:
            data = fh.read()
    text = f"mode {mode:04o}"
    return text if secret else f"{text}, sha256 {hashlib.sha256(data).hexdigest()}"


class ClientFiles:
    """Writes of one module run: only what differs, nothing in check mode."""

    def __init__(self, check: bool):
        self.check = check
        self.before: dict = {}
        self.after: dict = {}

    def write(self, path: str, data: bytes, mode: int, secret: bool = False) -> bool:
        """Make path hold data with mode. True when that is (or would be) a change."""
        exists = os.path.exists(path)
        same = False
        if exists:
            with open(path, "rb") as fh:
                same = fh.read() == data
            if same and os.stat(path).st_mode & 0o777 == mode:
                return False
        before = _describe(path, secret)
        after = _describe(path, secret, data, mode)
        if secret and not same:
            after += ", new content" if exists else ", created"
        self.before[path], self.after[path] = before, after
        if self.check:
            return True
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        if same:
            os.chmod(path, mode)
            return True
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(path + ".tmp", mode)
        os.replace(path + ".tmp", path)
        return True

    def private(self, path: str) -> bool:
        """Take group and other access away from an existing key. True on a change."""
        mode = os.stat(path).st_mode & 0o777
        if not mode & 0o077:
            return False
        self.before[path] = _describe(path, True)
        self.after[path] = "mode 0600"
        if not self.check:
            os.chmod(path, 0o600)
        return True

    def remote(self, conf: str, name: str, entry: dict) -> bool:
        """Set the remote `name` in config.yml, leaving the other remotes alone."""
        path = os.path.join(conf, "config.yml")
        config = _read_config(path)
        remotes = config.get("remotes") or {}
        config["remotes"] = remotes
        current = remotes.get(name) or {}
        if all(current.get(k) == v for k, v in entry.items()):
            return False
        remotes[name] = {**current, **entry}
        data = yaml.safe_dump(config, default_flow_style=False, sort_keys=True).encode()
        self.write(path, data, 0o600)
        # The entry says more than the file's digest.
        self.before[f"{path}: remotes.{name}"] = current
        self.after[f"{path}: remotes.{name}"] = remotes[name]
        return True

    def diff(self) -> dict:
        return {"before": self.before, "after": self.after}
