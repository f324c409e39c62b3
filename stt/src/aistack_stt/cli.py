"""`aistack-stt serve`: run the server with uvicorn.

Every flag has an AISTACK_STT_* environment twin (flag wins); a wrong value is reported in
one line and the command exits 2, without a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys

from . import __version__
from .config import COMPUTE_TYPES, DEVICES, ConfigError, load_settings


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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
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
    except ConfigError as exc:  # the scheduler and stream limits read AISTACK_STT_* too
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
