"""The `vocabulary` sub-tree of the settings (config.py): the household's words and Home
Assistant as a source of them (vocabulary.py, hass_names.py). Its variables carry no
prefix: AISTACK_STT_VOCABULARY, AISTACK_STT_HASS_*.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from .config_options import Checked, ConfigError
from .config_options import option as _opt


def _hass_url(name: str, value: str) -> str | None:
    url = value.strip()
    if not url or re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        return None
    return f"{name} {value!r} is not an http(s) URL; use http://HOST:8123, or leave it empty"


@dataclass(frozen=True)
class VocabularySettings(Checked):
    """Names and phrases every transcription is primed with; names from Home Assistant."""

    label: ClassVar[str] = ""

    vocabulary: str = _opt(
        "",
        "names and phrases every transcription is primed with, comma-separated "
        "(`Zorblat lamp, Quimby heater`), on every protocol; a request's own `prompt` and "
        "`hotwords` come after them",
        shown="empty",
    )
    hass_url: str = _opt(
        "",
        "Home Assistant's base URL (`http://192.168.1.20:8123`): the names of its exposed "
        "entities, areas and floors are added to the vocabulary; empty: not asked",
        shown="empty",
        check=_hass_url,
    )
    hass_token: str | None = _opt(
        None,
        "Home Assistant long-lived access token (prefer `AISTACK_STT_HASS_TOKEN_FILE`)",
        repr=False,
    )
    hass_token_file: str = _opt(
        "",
        "file holding the Home Assistant token (keep it 0600); read at start",
        shown="empty",
    )
    hass_refresh_s: float = _opt(
        300.0,
        "seconds between two fetches of Home Assistant's names",
        ge=30,
        le=86400,
        unit="seconds",
    )
    hass_timeout_s: float = _opt(
        10.0,
        "seconds one fetch from Home Assistant may take; it runs in the background, never on "
        "a request's path",
        ge=1,
        le=120,
        unit="seconds",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.hass_url.strip() and not (self.hass_token or self.hass_token_file.strip()):
            raise ConfigError(
                "hass_url is set but no token: set AISTACK_STT_HASS_TOKEN_FILE (or "
                "AISTACK_STT_HASS_TOKEN) to a Home Assistant long-lived access token"
            )
