#!/usr/bin/env python3
"""Put a snapshot of webui_snapshot.py back as Open WebUI's data directory, whole or not at all.

Usage: webui_restore.py SNAPSHOT DATA_DIR OWNER

The service is stopped first (by the playbook). The snapshot is unpacked beside the data
directory, owned by OWNER, and only then swapped in with two renames; the old directory is
removed last. The snapshot's members must be plain files and directories below the top.
"""

import os
import pwd
import shutil
import sys
import tarfile


def _unpack(snapshot: str, new: str, owner: str) -> None:
    user = pwd.getpwnam(owner)
    os.mkdir(new, 0o750)
    with tarfile.open(snapshot, mode="r:gz") as tar:
        members = tar.getmembers()
        for m in members:
            parts = m.name.split("/")
            if m.name.startswith("/") or ".." in parts or not (m.isfile() or m.isdir()):
                sys.exit(f"refusing the snapshot: unexpected member {m.name!r}")
        tar.extractall(new, members=members)
    for top, dirs, files in os.walk(new):
        for name in [top] + [os.path.join(top, n) for n in dirs + files]:
            os.chown(name, user.pw_uid, user.pw_gid)
    os.chmod(new, 0o750)


def restore(snapshot: str, data_dir: str, owner: str) -> None:
    data_dir = data_dir.rstrip("/")
    if os.path.ismount(data_dir):
        # A mounted data directory (an Incus disk device) cannot be renamed, and nothing can
        # be renamed across its edge: the new tree is unpacked inside it, the old entries are
        # moved aside inside it, then the new ones moved up.
        new, old = (
            os.path.join(data_dir, ".aistack-restoring"),
            os.path.join(data_dir, ".aistack-replaced"),
        )
        for leftover in (new, old):
            shutil.rmtree(leftover, ignore_errors=True)
        _unpack(snapshot, new, owner)
        os.mkdir(old, 0o700)
        for name in os.listdir(data_dir):
            if name not in (os.path.basename(new), os.path.basename(old)):
                os.rename(os.path.join(data_dir, name), os.path.join(old, name))
        for name in os.listdir(new):
            os.rename(os.path.join(new, name), os.path.join(data_dir, name))
        os.rmdir(new)
    else:
        new, old = data_dir + ".restoring", data_dir + ".replaced"
        for leftover in (new, old):
            shutil.rmtree(leftover, ignore_errors=True)
        _unpack(snapshot, new, owner)
        if os.path.exists(data_dir):
            os.rename(data_dir, old)
        os.rename(new, data_dir)
    shutil.rmtree(old, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    restore(*sys.argv[1:])
