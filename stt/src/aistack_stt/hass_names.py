"""Names from Home Assistant: its exposed entities', areas' and floors' names, kept fresh.

Home Assistant tells which entities are exposed to its voice assistant only over its
WebSocket API (`/api/websocket`), so that is what is asked, with a long-lived access token:
`auth`, then `homeassistant/expose_entity/list` (which entities are exposed),
`get_states` (their displayed names), `config/entity_registry/get_entries` (their
aliases),
`config/area_registry/list` and `config/floor_registry/list`.

The fetch runs in its own thread, every `hass_refresh_s`, each try bounded by
`hass_timeout_s`; a transcription only ever reads the last names from memory, so a Home
Assistant that is down, slow or answers garbage never delays one. When a fetch fails, the
last names stay (and the failure is logged once per change, without the token); before
the first success there are no names, only the server's vocabulary.
"""

from __future__ import annotations

import json
import logging
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .config import ConfigError, VocabularySettings
from .vocabulary import PROMPT_TOKENS, Vocabulary, parse_terms

log = logging.getLogger("aistack_stt.hass")

MAX_MESSAGE_BYTES = 16 * 1024 * 1024  # a big home's states; anything larger is refused
MAX_NAMES = 2000  # read at most this many before fitting them into the prompt budget


class HassError(RuntimeError):
    """Home Assistant did not answer as expected (the message never holds the token)."""


def websocket_url(base: str) -> str:
    parts = urlsplit(base.strip().rstrip("/"))
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path + "/api/websocket", "", ""))


def read_token(settings: VocabularySettings) -> str:
    if settings.hass_token:
        return settings.hass_token.strip()
    path = Path(settings.hass_token_file.strip())
    try:
        mode = path.stat().st_mode
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"hass_token_file {str(path)!r} cannot be read ({exc.strerror}); give the file "
            "holding the Home Assistant token"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("hass_token_file %s is readable by others; make it 0600", path)
    if not token:
        raise ConfigError(f"hass_token_file {str(path)!r} is empty; put the token in it")
    return token


def _exposed_ids(exposed: object) -> set[str]:
    """Entities exposed to Home Assistant's own voice assistant (`conversation`)."""
    try:
        table = exposed.get("exposed_entities") or {}  # type: ignore[union-attr]
        return {
            str(eid)
            for eid, how in table.items()
            if isinstance(how, dict) and how.get("conversation")
        }
    except (AttributeError, TypeError) as exc:
        raise HassError(f"expose_entity/list has an unexpected shape ({exc})") from None


def names_from(
    exposed: list[str], states: object, entries: object, areas: object, floors: object
) -> list[str]:
    """The names a speaker may say: exposed entities' displayed names and aliases, then
    areas and floors with their aliases. HassError when the answers have another shape."""
    shown = set(exposed)
    try:
        names: list[str] = []
        for state in states:  # type: ignore[union-attr]
            if state.get("entity_id") in shown:
                names.append(str((state.get("attributes") or {}).get("friendly_name") or ""))
        for entry in (entries or {}).values():  # type: ignore[union-attr]
            if entry:
                names.extend(str(a) for a in entry.get("aliases") or [] if a)
        for place in [*areas, *floors]:  # type: ignore[misc]
            names.append(str(place.get("name") or ""))
            names.extend(str(a) for a in place.get("aliases") or [] if a)
    except (AttributeError, TypeError) as exc:
        raise HassError(f"Home Assistant's answer has an unexpected shape ({exc})") from None
    return list(parse_terms(names))[:MAX_NAMES]


class HassNames:
    """The last names read from Home Assistant; `names()` never blocks."""

    def __init__(
        self,
        url: str,
        token: str,
        refresh_s: float,
        timeout_s: float,
        count: Callable[[str], int] | None = None,
    ) -> None:
        self.url = websocket_url(url)
        self._token = token
        self.refresh_s = refresh_s
        self.timeout_s = timeout_s
        self._fit = Vocabulary(count=count)
        self._names: tuple[str, ...] = ()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fetched = threading.Event()  # set after each fetch, good or bad (tests, health)
        self.last_error: str | None = None

    @classmethod
    def from_settings(
        cls, settings: VocabularySettings, count: Callable[[str], int] | None = None
    ) -> HassNames | None:
        if not settings.hass_url.strip():
            return None
        return cls(
            settings.hass_url,
            read_token(settings),
            settings.hass_refresh_s,
            settings.hass_timeout_s,
            count,
        )

    def names(self) -> tuple[str, ...]:
        return self._names

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aistack-stt-hass", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout_s + 1)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.refresh_s)

    def refresh(self) -> bool:
        """One fetch; the names are replaced only when it succeeds."""
        try:
            names = self.fetch()
        except Exception as exc:  # down, slow, refused, garbage: keep the last names
            error = f"{type(exc).__name__}: {exc}".replace(self._token, "<token>")
            if error != self.last_error:
                log.warning(
                    "Home Assistant names not refreshed (%s); keeping the last %d names",
                    error,
                    len(self._names),
                )
            self.last_error = error
            ok = False
        else:
            # Only what fits in Whisper's prompt is kept (whole names, in this order).
            self._names = tuple(self._fit.fit(names, PROMPT_TOKENS))
            if self.last_error is not None or not self.fetched.is_set():
                log.info(
                    "Home Assistant names: %d read, %d fit the prompt", len(names), len(self._names)
                )
            self.last_error = None
            ok = True
        self.fetched.set()
        return ok

    def fetch(self) -> list[str]:
        from websockets.sync.client import connect

        timeout = self.timeout_s
        with connect(
            self.url,
            open_timeout=timeout,
            close_timeout=1,
            max_size=MAX_MESSAGE_BYTES,
            proxy=None,
        ) as ws:
            deadline = _Deadline(timeout)

            def receive() -> dict:
                message = json.loads(ws.recv(timeout=deadline.left()))
                if not isinstance(message, dict):
                    raise HassError("Home Assistant sent something that is not a JSON object")
                return message

            if receive().get("type") != "auth_required":
                raise HassError("no auth_required from Home Assistant: is the URL right?")
            ws.send(json.dumps({"type": "auth", "access_token": self._token}))
            answer = receive()
            if answer.get("type") != "auth_ok":
                raise HassError("Home Assistant refused the token (auth_invalid)")
            counter = iter(range(1, 1000))

            def command(payload: dict) -> object:
                n = next(counter)
                ws.send(json.dumps({"id": n, **payload}))
                answer = receive()
                while answer.get("type") != "result" or answer.get("id") != n:
                    answer = receive()  # events of other subscriptions: none are asked for
                if not answer.get("success"):
                    raise HassError(f"{payload['type']} failed: {answer.get('error')}")
                return answer.get("result")

            exposed = command({"type": "homeassistant/expose_entity/list"})
            ids = sorted(_exposed_ids(exposed))
            states = command({"type": "get_states"})
            # Aliases come only with the extended registry entries, asked for exposed ones.
            entries = (
                command({"type": "config/entity_registry/get_entries", "entity_ids": ids})
                if ids
                else {}
            )
            areas = command({"type": "config/area_registry/list"})
            floors = command({"type": "config/floor_registry/list"})
        return names_from(ids, states, entries, areas, floors)


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.at = time.monotonic() + seconds

    def left(self) -> float:
        left = self.at - time.monotonic()
        if left <= 0:
            raise TimeoutError("Home Assistant did not answer within hass_timeout_s")
        return left
