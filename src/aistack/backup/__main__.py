"""`python -m aistack.backup pack|unpack|verify`: the controller's half of make backup/restore.

The Makefile runs playbooks/backup.yml first (Open WebUI's data fetched into a private
staging directory), then `pack`; for a restore it runs `unpack` (checks the whole archive,
then writes the controller's files back and the Open WebUI data into the staging
directory), `aistack sync`, then playbooks/restore.yml. Exit status 2: the input is wrong
(no backup, a damaged or foreign archive) and nothing was changed. No secret is printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .archive import WEBUI, ArchiveError, Contents, read_archive, write_archive

EXIT_INPUT = 2
BACKUP_DIR = "backups"
PREFIX = "aistack-"
SUFFIX = ".tar.gz"
# What the controller holds that `make apply` cannot make again, relative to the checkout.
STATE_DIR = ".aistack"
VARS_DIRS = ("host_vars", "group_vars")


def _controller_files(root: Path, infra: Path) -> dict[str, Path]:
    """The controller's files to keep, by their path relative to the checkout."""
    found: dict[str, Path] = {}
    state = root / STATE_DIR
    if state.is_dir():
        for path in sorted(state.rglob("*")):
            if path.is_file() and not path.is_symlink():
                found[path.relative_to(root).as_posix()] = path
    infra = infra if infra.is_absolute() else root / infra
    if not infra.is_file():
        raise ArchiveError(f"the infra file {infra} does not exist; give INFRA=PATH")
    if not infra.resolve().is_relative_to(root.resolve()):
        raise ArchiveError(f"the infra file {infra} is outside the checkout {root}; keep it inside")
    found[infra.resolve().relative_to(root.resolve()).as_posix()] = infra
    for name in VARS_DIRS:
        for path in sorted((root / name).glob("*.yml")):
            found[path.relative_to(root).as_posix()] = path
    return found


def _pack(args: argparse.Namespace) -> int:
    root = args.root.resolve()
    files = _controller_files(root, args.infra)
    contents = Contents(created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    for rel, path in files.items():
        contents.controller[rel] = path.read_bytes()
        contents.modes[rel] = path.stat().st_mode & 0o777
    for tarball in sorted((args.stage / WEBUI).glob("*.tar.gz")):
        contents.webui[tarball.name.removesuffix(".tar.gz")] = tarball.read_bytes()
    if not contents.webui and not args.allow_no_webui:
        raise ArchiveError(
            "no Open WebUI data was fetched (no open_webui machine in the inventory?); "
            "nothing written"
        )
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out = args.out or root / BACKUP_DIR / f"{PREFIX}{stamp}{SUFFIX}"
    write_archive(out, contents)
    size = out.stat().st_size / 1048576
    print(
        f"backup written: {out} ({size:.1f} MiB, mode 0600; {len(contents.controller)} "
        f"controller files, Open WebUI data of {', '.join(sorted(contents.webui))}). "
        "Copy it off this machine: it holds the CA key and the stack's passwords."
    )
    return 0


def newest(root: Path) -> Path:
    """The most recent archive under backups/ (names carry a UTC time stamp)."""
    found = sorted((root / BACKUP_DIR).glob(f"{PREFIX}*{SUFFIX}"))
    if not found:
        raise ArchiveError(
            f"no backup under {root / BACKUP_DIR}; run `make backup` or give BACKUP=FILE"
        )
    return found[-1]


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` whole: written beside it with its final mode, then renamed."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(f".{path.name}.restoring")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    os.chmod(partial, mode)
    partial.replace(path)


def _unpack(args: argparse.Namespace) -> int:
    root = args.root.resolve()
    path = args.file or newest(root)
    contents = read_archive(path)  # everything is checked before anything is written
    state = root / STATE_DIR
    state.mkdir(mode=0o700, exist_ok=True)
    for rel, data in sorted(contents.controller.items()):
        _write_file(root / rel, data, contents.modes.get(rel, 0o600))
    for machine, data in contents.webui.items():
        _write_file(args.stage / WEBUI / f"{machine}.tar.gz", data, 0o600)
    print(
        f"restoring {path} (made {contents.created}): {len(contents.controller)} controller "
        f"files written back; Open WebUI data of {', '.join(sorted(contents.webui)) or 'none'} "
        "goes back next"
    )
    return 0


def _verify(args: argparse.Namespace) -> int:
    path = args.file or newest(args.root.resolve())
    contents = read_archive(path)
    print(
        f"{path}: a complete aistack backup made {contents.created} "
        f"({len(contents.controller)} controller files, Open WebUI data of "
        f"{', '.join(sorted(contents.webui)) or 'none'})"
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m aistack.backup")
    parser.add_argument("--root", type=Path, default=Path("."), help="the checkout")
    commands = parser.add_subparsers(dest="command", required=True)
    pack = commands.add_parser("pack", help="write the archive from the checkout and the stage")
    pack.add_argument("--infra", type=Path, default=Path("infra.yml"))
    pack.add_argument("--stage", type=Path, required=True)
    pack.add_argument("--out", type=Path, default=None)
    pack.add_argument("--allow-no-webui", action="store_true", help=argparse.SUPPRESS)
    pack.set_defaults(run=_pack)
    unpack = commands.add_parser("unpack", help="check the archive, then write it back")
    unpack.add_argument("--file", type=Path, default=None)
    unpack.add_argument("--stage", type=Path, required=True)
    unpack.set_defaults(run=_unpack)
    verify = commands.add_parser("verify", help="check the archive and say what it holds")
    verify.add_argument("--file", type=Path, default=None)
    verify.set_defaults(run=_verify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "file", None) is not None and not str(args.file):
        args.file = None
    try:
        return args.run(args)
    except ArchiveError as exc:
        print(f"aistack backup: {exc}", file=sys.stderr)
        return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
