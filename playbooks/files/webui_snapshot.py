#!/usr/bin/env python3
"""Open WebUI's data directory as one gzip'd tar, taken while the service runs.

Usage: webui_snapshot.py DATA_DIR OUT

The database is not copied as a file: a copy of a live SQLite file (and its -wal/-shm)
can be torn. SQLite's backup API makes a consistent copy of it instead, which goes into
the tar as webui.db. The cache (downloaded models, rebuilt on demand) is left out. OUT is
created mode 0600 and holds accounts and chats. Runs with the machine's own python3.
"""

import os
import sqlite3
import sys
import tarfile
import tempfile

DB = "webui.db"
SKIP = {DB, DB + "-wal", DB + "-shm", DB + "-journal", "cache"}


def snapshot(data_dir: str, out: str) -> None:
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(out) or ".") as tmp:
        copy = os.path.join(tmp, DB)
        source = sqlite3.connect(f"file:{os.path.join(data_dir, DB)}?mode=ro", uri=True)
        target = sqlite3.connect(copy)
        with target:
            source.backup(target)
        source.close()
        target.close()
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            tar.add(copy, arcname=DB)
            for name in sorted(os.listdir(data_dir)):
                if name not in SKIP:
                    tar.add(os.path.join(data_dir, name), arcname=name)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    snapshot(sys.argv[1], sys.argv[2])
