"""The `live` sub-tree of the settings: the gRPC server, decode profiles, the interim model,
the language allow-list and opt-in capture of live sessions (grpc_backend/, live/).

No label: its variables keep their short names (`AISTACK_STT_GRPC_PORT`, `--interim-model`),
as users of whisper-streaming-stt-server and two_stt know them.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config_options import Checked
from .config_options import option as _opt
from .config_subtrees import port_option

DECODE_PROFILES = ("realtime", "accurate")


def _codes(values: tuple[str, ...]) -> str:
    return ", ".join(f"`{v}`" for v in values)


def language_list(text: str) -> tuple[str, ...]:
    return tuple(c.strip().lower() for c in text.split(",") if c.strip())


def _languages(name: str, value: str) -> str | None:
    for code in language_list(value):
        if not code.isalpha() or len(code) > 3:
            return f"{name}: {code!r} is not a language code; use codes such as en,de"
    return None


def _model(name: str, value: str | None) -> str | None:
    if value is not None and not value.strip():
        return f"{name} is empty; name a model or leave it unset"
    return None


@dataclass(frozen=True)
class LiveSettings(Checked):
    """gRPC, decode profiles, the interim model, languages and capture of live sessions."""

    grpc_port: int = port_option(
        0,
        "TCP port of the gRPC server (`stt.STTBackend`, whisper-streaming-stt-server's "
        "protocol); `0`: off",
        means={0: "off"},
    )
    grpc_host: str = _opt(
        "", "address the gRPC server listens on; empty: the HTTP server's (`host`)", shown="empty"
    )
    decode_profile: str = _opt(
        "accurate",
        "decode profile of finals when a session or request names none: "
        + _codes(DECODE_PROFILES)
        + " (interims always decode with `realtime`)",
        choices=DECODE_PROFILES,
    )
    interim_model: str | None = _opt(
        None,
        "a fast model for the interim (partial) results of live sessions, e.g. `tiny`; finals "
        "keep the session's model. Unset: one model for both",
        check=_model,
    )
    languages: str = _opt(
        "",
        "language allow-list, comma-separated codes (`en,de`): detection picks only among "
        "these; empty: any language",
        shown="empty",
        check=_languages,
    )
    capture_dir: str = _opt(
        "",
        "opt-in capture: keep each live session's audio (WAV) and finals (JSON) in this "
        "directory (0700), unless the client opts out; a privacy choice. Empty: nothing is kept",
        shown="empty",
    )
    capture_max_mb: float = _opt(
        1024.0, "capture: MiB kept at most, oldest sessions go first", gt=0, unit="MiB"
    )
    capture_max_files: int = _opt(
        1000, "capture: sessions kept at most (a WAV and a JSON each)", ge=1
    )
    capture_max_age_h: float = _opt(
        72.0, "capture: hours a captured session is kept", gt=0, unit="hours"
    )

    def language_list(self) -> tuple[str, ...]:
        return language_list(self.languages)
