"""What reaches the log: secrets never, and a flood of one error only now and then.

The log ends in the journal, readable by more people than the API key is meant for, so
`RedactSecrets` blanks `api_key=...` (and similar) in every record before it is written:
uvicorn writes WebSocket and request paths with their query string. `OncePerInterval` keeps
a burst of identical errors (an accept loop out of file descriptors) to one line per interval
and says how many it left out. `log_config()` is uvicorn's logging config with both filters
on every handler; `install()` puts them on the root logger's handlers too.
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import time
from typing import Any

_SECRET = re.compile(r"(?i)((?:^|[?&;\s])(?:api[_-]?key|access[_-]?token|token|key)=)[^&;\s\"']*")
REDACTED = "***"


def redact(text: str) -> str:
    return _SECRET.sub(r"\1" + REDACTED, text)


class RedactSecrets(logging.Filter):
    """Blank secrets in query strings, in the message and in its arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            args = record.args.items()
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in args}
        return True


class OncePerInterval(logging.Filter):
    """Errors and warnings with the same text: the first per `interval` seconds is written.

    The next one written after a quiet spell says how many were left out, so the log stays
    small and still tells that the flood happened.
    """

    def __init__(self, interval: float = 10.0) -> None:
        super().__init__()
        self.interval = interval
        self._seen: dict[str, tuple[float, int]] = {}  # key -> (last written, left out since)
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        try:
            key = f"{record.name}:{record.getMessage()}"
        except (TypeError, ValueError):  # arguments that do not fit: logging reports it
            return True
        now = time.monotonic()
        with self._lock:
            last, dropped = self._seen.get(key, (float("-inf"), 0))
            if now - last < self.interval:
                self._seen[key] = (last, dropped + 1)
                return False
            if len(self._seen) > 1000:  # bounded however many kinds of message there are
                self._seen.clear()
            self._seen[key] = (now, 0)
        if dropped:
            record.msg = f"{record.msg} ({dropped} more like this since it was last written)"
        return True


_FILTERS = {
    "redact_secrets": {"()": f"{__name__}.RedactSecrets"},
    "once_per_interval": {"()": f"{__name__}.OncePerInterval"},
}


def log_config() -> dict[str, Any]:
    """uvicorn's own logging config, with both filters on each of its handlers."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {}).update(_FILTERS)
    for handler in config["handlers"].values():
        handler["filters"] = [*handler.get("filters", []), *_FILTERS]
    return config


def install() -> None:
    """Both filters on the root logger's handlers (aistack_stt's and asyncio's records)."""
    filters = [RedactSecrets(), OncePerInterval()]
    for handler in logging.getLogger().handlers:
        for f in filters:
            handler.addFilter(f)
