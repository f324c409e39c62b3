"""The backup archive: a manifest first, then the files it lists, each with its checksum.

Layout of the tar (gzip):

- `aistack-backup.json`: `{"format": "aistack-backup", "version": 1, "created": ...,
  "files": {member: sha256}}`, always the first member;
- `controller/<path>`: files of the controller, relative to the checkout (`.aistack/...`,
  the infra file, `host_vars/*.yml`, `group_vars/*.yml`);
- `open_webui/<machine>.tar.gz`: Open WebUI's data directory of each machine, its database
  a consistent copy made with SQLite's backup API (playbooks/files/webui_snapshot.py).

Reading checks everything before a single byte is written anywhere: the marker and version,
that every member is a plain file under one of the two prefixes with a safe relative path,
that the members are exactly those the manifest lists, and every checksum.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

FORMAT = "aistack-backup"
VERSION = 1
MANIFEST = "aistack-backup.json"
CONTROLLER = "controller"
WEBUI = "open_webui"
# A manifest is a few KiB; anything much larger is not ours.
_MAX_MANIFEST = 1 << 20


class ArchiveError(ValueError):
    """The archive cannot be used; the message names it and what is wrong."""


@dataclass
class Contents:
    """What an archive holds, read and checked, as bytes in memory (a few MiB of state plus
    the Open WebUI data)."""

    created: str
    controller: dict[str, bytes] = field(default_factory=dict)
    webui: dict[str, bytes] = field(default_factory=dict)
    # Permission bits of each controller file (0600 for the keys), restored as they were.
    modes: dict[str, int] = field(default_factory=dict)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _add(tar: tarfile.TarFile, name: str, data: bytes, mtime: float, mode: int = 0o600) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode & 0o777
    info.mtime = int(mtime)
    tar.addfile(info, io.BytesIO(data))


def write_archive(out: Path, contents: Contents) -> None:
    """Write the archive to `out` (mode 0600 from its first byte, renamed into place whole)."""
    members = {f"{CONTROLLER}/{k}": v for k, v in sorted(contents.controller.items())}
    members.update({f"{WEBUI}/{k}.tar.gz": v for k, v in sorted(contents.webui.items())})
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "created": contents.created,
        "files": {name: _sha256(data) for name, data in members.items()},
    }
    out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = out.with_name(f".{out.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    now = time.time()
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            _add(tar, MANIFEST, json.dumps(manifest, indent=2).encode(), now)
            for name, data in members.items():
                key = name.partition("/")[2]
                _add(tar, name, data, now, contents.modes.get(key, 0o600))
        os.chmod(partial, 0o600)
        partial.replace(out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _safe_name(name: str) -> bool:
    path = PurePosixPath(name)
    return (
        not path.is_absolute()
        and ".." not in path.parts
        and len(path.parts) >= 2
        and path.parts[0] in (CONTROLLER, WEBUI)
    )


def _read_manifest(tar: tarfile.TarFile, where: Path) -> dict:
    first = tar.next()
    if first is None or first.name != MANIFEST or not first.isfile():
        raise ArchiveError(f"{where} is not an aistack backup: it does not start with {MANIFEST}")
    if first.size > _MAX_MANIFEST:
        raise ArchiveError(f"{where}: its {MANIFEST} is {first.size} bytes, too large to be ours")
    stream = tar.extractfile(first)
    assert stream is not None
    try:
        manifest = json.loads(stream.read())
    except ValueError as exc:
        raise ArchiveError(f"{where}: {MANIFEST} is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ArchiveError(f"{where} is not an aistack backup (no format marker {FORMAT!r})")
    if manifest.get("version") != VERSION:
        raise ArchiveError(
            f"{where} is an aistack backup of format version {manifest.get('version')!r}; "
            f"this checkout reads version {VERSION}. Restore it with the release that made it."
        )
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise ArchiveError(f"{where}: {MANIFEST} has no valid list of files")
    return manifest


def _check_gzip(path: Path) -> None:
    """Read the whole gzip stream once: its CRC covers the bytes tarfile never reads (the
    padding after the last member), so any flipped byte anywhere is found."""
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(1 << 20):
                pass
    except (OSError, EOFError, zlib.error) as exc:
        raise ArchiveError(f"{path} is damaged or not a gzip'd tar archive ({exc})") from None


def read_archive(path: Path) -> Contents:
    """Read and check the whole archive; `ArchiveError` on the first thing that is wrong."""
    if not path.is_file():
        raise ArchiveError(f"{path} does not exist (or is not a file)")
    _check_gzip(path)
    found: dict[str, bytes] = {}
    modes: dict[str, int] = {}
    try:
        with tarfile.open(path, mode="r:gz") as tar:
            manifest = _read_manifest(tar, path)
            files = manifest["files"]
            for member in tar:
                if member.name == MANIFEST and not found and member.offset == 0:
                    continue  # read above
                if not member.isfile() or not _safe_name(member.name):
                    raise ArchiveError(
                        f"{path}: unexpected member {member.name!r} (not a plain file under "
                        f"{CONTROLLER}/ or {WEBUI}/); the archive was not made by `make backup`"
                    )
                if member.name in found:
                    raise ArchiveError(f"{path}: member {member.name!r} appears twice")
                stream = tar.extractfile(member)
                assert stream is not None
                found[member.name] = stream.read()
                modes[member.name] = member.mode & 0o777
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise ArchiveError(f"{path} is damaged or not a gzip'd tar archive ({exc})") from None
    missing = sorted(set(files) - set(found))
    extra = sorted(set(found) - set(files))
    if missing or extra:
        raise ArchiveError(
            f"{path} is damaged or was changed: the files do not match its manifest (missing: "
            f"{missing or 'none'}, not listed: {extra or 'none'})"
        )
    bad = sorted(name for name, data in found.items() if _sha256(data) != files[name])
    if bad:
        raise ArchiveError(f"{path} is damaged: checksum mismatch in {', '.join(bad)}")
    contents = Contents(created=str(manifest.get("created", "")))
    for name, data in found.items():
        prefix, _, rest = name.partition("/")
        if prefix == CONTROLLER:
            contents.controller[rest] = data
            contents.modes[rest] = modes[name]
        else:
            contents.webui[rest.removesuffix(".tar.gz")] = data
    return contents
