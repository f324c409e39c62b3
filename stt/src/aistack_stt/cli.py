"""`aistack-stt serve`: run the server with uvicorn. `aistack-stt check`: check settings only.

Every flag has an AISTACK_STT_* environment twin (flag wins); a wrong value is reported in
one line and the command exits 2, without a traceback.
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path

from . import __version__
from .config import COMPUTE_TYPES, DEVICES, ENV_PREFIX, ConfigError, Settings, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aistack-stt", description="OpenAI-compatible speech-to-text server"
    )
    parser.add_argument("--version", action="version", version=f"aistack-stt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server")
    opt = serve.add_argument
    opt("--host", help="address to listen on (AISTACK_STT_HOST, default 0.0.0.0)")
    opt("--port", help="TCP port (AISTACK_STT_PORT, default 8000)")
    opt("--model", help="default model: alias, hub repo id or directory (AISTACK_STT_MODEL)")
    opt("--model-dir", help="where models are looked up and downloaded (AISTACK_STT_MODEL_DIR)")
    opt("--device", help=f"{' | '.join(DEVICES)} (AISTACK_STT_DEVICE, default auto)")
    opt("--compute-type", help=f"{', '.join(COMPUTE_TYPES)} (AISTACK_STT_COMPUTE_TYPE)")
    opt("--api-key", help="require Authorization: Bearer KEY (AISTACK_STT_API_KEY)")
    opt("--model-ttl", help="seconds idle before a model unloads, -1 never (AISTACK_STT_MODEL_TTL)")
    opt("--language", help="default spoken language, empty: detect (AISTACK_STT_LANGUAGE)")
    opt("--beam-size", help="beam size for decoding (AISTACK_STT_BEAM_SIZE, default 5)")
    opt("--cpu-threads", help="CTranslate2 threads, 0 automatic (AISTACK_STT_CPU_THREADS)")
    opt("--max-upload-mb", help="largest accepted upload (AISTACK_STT_MAX_UPLOAD_MB, default 25)")
    opt("--log-level", help="critical|error|warning|info|debug (AISTACK_STT_LOG_LEVEL)")
    check = sub.add_parser(
        "check",
        help="check every AISTACK_STT_* setting without starting anything",
        description="Check the settings `serve` would use: every AISTACK_STT_* variable, from "
        "the environment or from --env-file (a systemd EnvironmentFile), must be known and "
        "valid. Exit 0 when they are, 2 with one line per problem when not.",
    )
    check.add_argument("--env-file", type=Path, help="read the variables from this file only")
    return parser


def known_variables() -> set[str]:
    """Every AISTACK_STT_* name the server reads: settings, scheduler and stream limits."""
    from .scheduler import SchedulerSettings
    from .streaming import StreamLimits
    from .wyoming import WyomingSettings

    names = {ENV_PREFIX + f.name.upper() for f in fields(Settings)}
    names |= {ENV_PREFIX + f.name.upper() for f in fields(SchedulerSettings)}
    names |= {ENV_PREFIX + "STREAM_" + f.name.upper() for f in fields(StreamLimits)}
    names |= WyomingSettings.variables()  # Wyoming glue (issue 16)
    return names


def read_env_file(path: Path) -> dict[str, str]:
    """NAME=VALUE lines as systemd reads them (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"{path}:{number}: expected NAME=VALUE, got {line!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[name.strip()] = value
    return values


def check(environ: Mapping[str, str]) -> list[str]:
    """Problems with the settings in `environ`, one line each; empty when all is well."""
    from .scheduler import SchedulerSettings
    from .streaming import StreamLimits
    from .wyoming import WyomingSettings

    problems = []
    known = known_variables()
    for name in sorted(n for n in environ if n.startswith(ENV_PREFIX) and n not in known):
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else "; see stt/README.md for the names"
        problems.append(f"{name} is not a setting of aistack-stt{hint}")
    for build in (
        lambda: load_settings(environ=environ),
        lambda: SchedulerSettings.from_env(environ),
        lambda: StreamLimits.from_env(environ),
        lambda: WyomingSettings.from_env(environ),  # Wyoming glue (issue 16)
    ):
        try:
            build()
        except ConfigError as exc:
            problems.append(str(exc))
    return problems


def _check(args: argparse.Namespace) -> int:
    try:
        environ = read_env_file(args.env_file) if args.env_file else dict(os.environ)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"aistack-stt: error: cannot read {args.env_file}: {exc}", file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"aistack-stt: error: {exc}", file=sys.stderr)
        return 2
    problems = check(environ)
    for problem in problems:
        print(f"aistack-stt: error: {problem}", file=sys.stderr)
    if problems:
        return 2
    print("aistack-stt: settings OK")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "check":
        return _check(args)
    overrides = {k: v for k, v in vars(args).items() if k != "command"}
    try:
        settings = load_settings(overrides)
    except ConfigError as exc:
        print(f"aistack-stt: error: {exc}", file=sys.stderr)
        return 2

    import uvicorn  # imported late: `--help` and config errors stay fast

    from .app import create_app

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        app = create_app(settings)
        if app.state.wyoming is not None:  # Wyoming glue (issue 16): a busy port in one line
            app.state.wyoming.bind()
    except (ConfigError, OSError) as exc:  # scheduler, stream and Wyoming read AISTACK_STT_*
        print(f"aistack-stt: error: {exc}", file=sys.stderr)
        return 2
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)
    except OSError as exc:
        print(
            f"aistack-stt: error: cannot listen on {settings.host}:{settings.port}: {exc}",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
