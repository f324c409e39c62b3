"""`make backup` / `make restore`: one archive holding what the stack cannot make again.

The archive (a gzip'd tar, mode 0600) is written outside `.aistack/`, because it exists to
survive the loss of the controller's state: `archive.py` knows its format and refuses a
damaged or foreign one before anything is written; `__main__.py` is the command the
Makefile runs around playbooks/backup.yml and playbooks/restore.yml.
"""

from .archive import FORMAT, VERSION, ArchiveError, Contents, read_archive, write_archive

__all__ = ["FORMAT", "VERSION", "ArchiveError", "Contents", "read_archive", "write_archive"]
