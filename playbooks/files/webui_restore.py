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


def restore(snapshot: str, data_dir: str, owner: str) -> None:
    user = pwd.getpwnam(owner)
    data_dir = data_dir.rstrip("/")
    new, old = data_dir + ".restoring", data_dir + ".replaced"
    for leftover in (new, old):
        shutil.rmtree(leftover, ignore_errors=True)
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
    if os.path.exists(data_dir):
        os.rename(data_dir, old)
    os.rename(new, data_dir)
    shutil.rmtree(old, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    restore(*sys.argv[1:])
