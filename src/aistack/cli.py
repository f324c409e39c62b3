"""`aistack sync` and `aistack validate`.

Exit status: 0 done, 2 the input needs fixing (every problem is printed, nothing
is written), 1 an unexpected failure such as a full disk.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __version__, writer
from .errors import AistackError
from .sync import SyncRequest, plan, validate

EXIT_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aistack",
        description="Turn infra.yml into the Ansible inventory of the homelab.aistack collection.",
    )
    parser.add_argument("--version", action="version", version=f"aistack {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sync = commands.add_parser(
        "sync",
        help="write inventory/, group_vars/ and host_vars/ from infra.yml",
        description="Write the managed blocks of inventory/, group_vars/ and host_vars/.",
    )
    sync.add_argument(
        "--infra", type=Path, default=Path("infra.yml"), help="the infra file (default: infra.yml)"
    )
    sync.add_argument(
        "--dry-run",
        action="store_true",
        help="print a unified diff of what would change and write nothing",
    )
    sync.add_argument(
        "--clean-orphans",
        action="store_true",
        help="remove generated files of machines and domains no longer in infra.yml",
    )
    sync.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="where inventory/ and the vars directories live (default: next to the infra file)",
    )
    sync.add_argument(
        "--roles-dir",
        type=Path,
        default=None,
        help="the roles/ directory that defines valid roles (default: next to the "
        "infra file, else the collection's)",
    )

    check = commands.add_parser(
        "validate",
        help="check infra.yml and report every error",
        description="Check an infra file; write nothing.",
    )
    check.add_argument(
        "file",
        nargs="?",
        type=Path,
        default=Path("infra.yml"),
        help="the infra file (default: infra.yml)",
    )
    check.add_argument(
        "--roles-dir", type=Path, default=None, help="the roles/ directory that defines valid roles"
    )
    return parser


def _sync(args: argparse.Namespace) -> int:
    request = SyncRequest(
        infra=args.infra,
        output_dir=args.output_dir,
        roles_dir=args.roles_dir,
        clean_orphans=args.clean_orphans,
    )
    result = plan(request)
    if args.dry_run:
        sys.stdout.write(writer.diff(result))
    else:
        writer.apply(result)
    prefix = "would " if args.dry_run else ""
    for change in result.changes:
        print(f"{prefix}{change.verb} {change.rel}", file=sys.stderr)
    for link in result.links:
        print(f"{prefix}link {link} -> {writer.VARS_LINKS[link]}", file=sys.stderr)
    for orphan in result.orphans:
        if not args.clean_orphans:
            print(
                f"orphan {orphan.rel}: {orphan.reason}; --clean-orphans removes it", file=sys.stderr
            )
    if result.empty:
        print(f"up to date: {len(result.unchanged)} files match {args.infra}", file=sys.stderr)
    return 0


def _validate(args: argparse.Namespace) -> int:
    checked = validate(SyncRequest(infra=args.file, roles_dir=args.roles_dir))
    infra = checked.infra
    print(f"{args.file}: valid ({len(infra.domains)} domains, {len(infra.machines)} machines)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _sync(args) if args.command == "sync" else _validate(args)
    except AistackError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        count = len(exc.issues)
        print(f"{count} error{'s' if count != 1 else ''}; nothing was written", file=sys.stderr)
        return EXIT_INPUT
    except OSError as exc:
        print(f"aistack: {exc.strerror or exc}: {exc.filename or ''}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
