"""Wyoming server settings: each one an AISTACK_STT_WYOMING_* variable (see `from_env`).

Kept beside the server rather than in config.py so the protocol adapter carries its own
knobs; `aistack-stt check` lists and validates them with the others.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from ..config import ConfigError

ENV_PREFIX = "AISTACK_STT_WYOMING_"
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class WyomingSettings:
    """Where the Wyoming server listens and how much one connection may ask of it."""

    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = 10300  # the port Home Assistant's Wyoming integration suggests for STT
    max_connections: int = 16
    max_audio_s: float = 120.0  # audio kept per request (16 kHz float32: 7.7 MB at 120 s)
    max_event_bytes: int = 1024 * 1024  # header line, data and payload of one event, each
    idle_timeout_s: float = 60.0  # no event for this long closes the connection
    # Source networks allowed to connect, comma-separated CIDRs; empty: anyone who can reach
    # the port. Wyoming has no authentication, so this is its only gate besides the network.
    allow: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.port < 65536:
            raise ConfigError(
                f"wyoming port {self.port} is out of range; use 1-65535 (0: any free port)"
            )
        if self.max_connections < 1:
            raise ConfigError(
                f"wyoming max_connections {self.max_connections} is invalid; use 1 or more"
            )
        if not 1 <= self.max_audio_s <= 3600:
            raise ConfigError(
                f"wyoming max_audio_s {self.max_audio_s} is invalid; use 1-3600 seconds"
            )
        if self.max_event_bytes < 4096:
            raise ConfigError(
                f"wyoming max_event_bytes {self.max_event_bytes} is invalid; use 4096 or more"
            )
        if self.idle_timeout_s <= 0:
            raise ConfigError(
                f"wyoming idle_timeout_s {self.idle_timeout_s} is invalid; use seconds > 0"
            )

        self.networks()  # a wrong network fails at start, naming itself

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        networks = []
        for item in filter(None, (part.strip() for part in self.allow.split(","))):
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ConfigError(
                    f"wyoming allow: {item!r} is not a network; use CIDRs such as "
                    "192.168.1.0/24, separated by commas"
                ) from None
        return networks

    def allows(self, address: str) -> bool:
        networks = self.networks()
        if not networks:
            return True
        try:
            ip = ipaddress.ip_address(address.split("%")[0])
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in networks)

    @classmethod
    def variables(cls) -> set[str]:
        return {ENV_PREFIX + f.name.upper() for f in fields(cls)}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> WyomingSettings:
        """Read AISTACK_STT_WYOMING_*; an empty value means the default, like config.py."""
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            env = ENV_PREFIX + f.name.upper()
            raw = environ.get(env, "").strip()
            if not raw:
                continue
            values[f.name] = _convert(env, raw, f.type)
        return cls(**values)  # type: ignore[arg-type]


def _convert(env: str, raw: str, kind: object) -> object:
    if kind in (bool, "bool"):
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise ConfigError(f"{env}={raw!r} is not a boolean; use true or false")
    if kind in (str, "str"):
        return raw
    number = int if kind in (int, "int") else float
    try:
        return number(raw)
    except ValueError:
        kind_name = "a whole number" if number is int else "a number"
        raise ConfigError(f"{env}={raw!r} is not {kind_name}") from None
