"""`aistack-stt serve`: run the server with uvicorn. `aistack-stt check`: check settings only.

Every setting of the tree in config.py is a flag and an AISTACK_STT_* variable (flag wins);
each wrong value is reported in one line and the command exits 2, without a traceback.

`serve` handles SIGHUP (`systemctl reload`): it reads `model_env_file` again and swaps to the
model it names without stopping (model_swap.py). The handler is installed first thing, so a
SIGHUP that comes while the server is still starting is kept, not fatal (SIGHUP's default).
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from pathlib import Path

from . import __version__
from .config import ENV_PREFIX, ConfigError, known_variables, leaves, load_settings
from .env_file import read_env_file


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aistack-stt", description="OpenAI-compatible speech-to-text server"
    )
    parser.add_argument("--version", action="version", version=f"aistack-stt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server")
    for leaf in leaves():  # one flag per setting of the tree (config.py)
        default = leaf.default_text().replace("`", "")
        serve.add_argument(
            leaf.flag, dest=leaf.key, help=f"{leaf.help} ({leaf.env}, default {default})"
        )
    check = sub.add_parser(
        "check",
        help="check every AISTACK_STT_* setting without starting anything",
        description="Check the settings `serve` would use: every AISTACK_STT_* variable, from "
        "the environment or from --env-file (a systemd EnvironmentFile), must be known and "
        "valid. Exit 0 when they are, 2 with one line per problem when not.",
    )
    check.add_argument("--env-file", type=Path, help="read the variables from this file only")
    return parser


def check(environ: Mapping[str, str]) -> list[str]:
    """Problems with the settings in `environ`, one line each; empty when all is well."""
    problems = []
    known = known_variables()
    for name in sorted(n for n in environ if n.startswith(ENV_PREFIX) and n not in known):
        close = difflib.get_close_matches(name, sorted(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else "; see stt/README.md for the names"
        problems.append(f"{name} is not a setting of aistack-stt{hint}")
    try:
        load_settings(environ=environ)
    except ConfigError as exc:
        problems.extend(exc.problems)
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
    hangups = threading.Event()  # SIGHUPs before the app exists; handed to it below
    signal.signal(signal.SIGHUP, lambda *_: hangups.set())
    try:
        settings = load_settings(overrides)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"aistack-stt: error: {problem}", file=sys.stderr)
        return 2

    import uvicorn  # imported late: `--help` and config errors stay fast

    from . import client_limits, logfilters, serving
    from .app import create_app

    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logfilters.install()  # no API key in the log, no flood of one error
    try:
        app = create_app(settings, flags=overrides)
    except ConfigError as exc:  # a voice that is not there (tts/voices.py)
        print(f"aistack-stt: error: {exc}", file=sys.stderr)
        return 2
    # SIGHUP: swap to the model settings of model_env_file (model_swap.py); uvicorn leaves
    # this signal alone (it handles SIGINT and SIGTERM).
    signal.signal(signal.SIGHUP, lambda *_: app.state.swap.request())
    if hangups.is_set():
        app.state.swap.request()
    if app.state.wyoming is not None:
        try:  # take the Wyoming port now, so that a busy one is reported in one line
            app.state.wyoming.bind()
        except OSError as exc:
            print(f"aistack-stt: error: {exc}", file=sys.stderr)
            return 2
    if settings.live.grpc_port:
        from .grpc_backend.server import check_port

        try:  # a busy gRPC port is reported in one line, as the Wyoming port is
            check_port(settings.live.grpc_host or settings.host, settings.live.grpc_port)
        except OSError as exc:
            print(f"aistack-stt: error: {exc}", file=sys.stderr)
            return 2
    before, open_files = serving.raise_open_file_limit()
    connections = serving.connection_budget(settings, open_files)
    per_client = client_limits.AddressCounter(
        client_limits.per_client_limit(settings.max_connections_per_client, connections)
    )
    proxies = client_limits.proxy_networks(settings.trusted_proxies)
    app.state.client_connections = per_client
    logging.getLogger("aistack_stt").info(
        "open-file limit %d%s; at most %d connections at once, %d per client address",
        open_files,
        f" (raised from {before})" if open_files != before else "",
        connections,
        per_client.limit,
    )
    try:
        uvicorn.run(
            # Requests through the front door count per client it names (client_limits.py);
            # uvicorn's own proxy-header handling is off, this is the one place that reads them.
            client_limits.PerClientRequests(app, per_client, proxies),
            proxy_headers=False,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            log_config=logfilters.log_config(),
            http=serving.protocol_class(
                connections, settings.header_timeout_s, per_client, proxies
            ),
            backlog=min(2048, max(128, connections)),
            # SIGTERM: what is still open after this is cancelled, so a stuck client (a
            # trickled upload, a session waiting on a final) cannot keep the server up.
            timeout_graceful_shutdown=settings.shutdown_timeout_s,
        )
    except OSError as exc:
        print(
            f"aistack-stt: error: cannot listen on {settings.host}:{settings.port}: {exc}",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
