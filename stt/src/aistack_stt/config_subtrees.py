"""The sub-trees of the settings: `scheduler`, `stream`, `wyoming`, `vram` and `tts`
(config.py holds the root, `Settings`, and says how the tree is read and checked).

Each leaf carries what it allows (`ge=1`, `choices=...`, `check=...`); `Checked` runs the one
loop over them when a node is built.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import ClassVar

from .config_options import AUTOMATIC, Checked, ConfigError
from .config_options import option as _opt

SEPARATE_LANES = ("auto", "always", "never")


def port_option(default: int, help: str, means: dict[int, str] | None = None):  # noqa: A002
    """A TCP port option (0-65535); `means` names what a special port (`0`) stands for."""
    return _opt(default, help, ge=0, le=65535, means=means or {})


def _http_url(name: str, value: str) -> str | None:
    url = value.strip()
    if not url or re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
        return None
    return f"{name} {value!r} is not an http(s) URL; use http://HOST:11434, or leave it empty"


def parse_networks(text: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Comma-separated CIDRs as networks; a wrong one is a `ConfigError` naming it."""
    networks = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"wyoming allow: {item!r} is not a network; use CIDRs such as "
                "192.168.1.0/24, separated by commas"
            ) from None
    return networks


def _networks(name: str, value: str) -> str | None:
    try:
        parse_networks(value)
    except ConfigError as exc:
        return str(exc)
    return None


def _endpoint(name: str, value: float) -> str | None:
    if value == 0 or 0.1 <= value <= 10:
        return None
    return f"{name} {value} is invalid; use 0.1-10 seconds, or 0 (off)"


def _service_name(name: str, value: str) -> str | None:
    if re.fullmatch(r"[^.\s][^.]{0,62}", value):
        return None
    return f"{name} {value!r} is invalid; use 1-63 characters without dots"


def _ipv4(name: str, value: str) -> str | None:
    if not value:
        return None
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return f"{name} {value!r} is not an IPv4 address; use the LAN address clients use"
    return None


@dataclass(frozen=True)
class SchedulerSettings(Checked):
    """Lanes, batching and backpressure (scheduling/)."""

    short_audio_s: float = _opt(
        15.0, "audio up to this long (seconds) uses the hot lane", ge=0, unit="seconds"
    )
    max_batch: int = _opt(
        4, "windows per CTranslate2 call (bench/stt_batching.py: 8 was slower on CPU)", ge=1
    )
    max_queue: int = _opt(
        512, "requests admitted (waiting or running) before 503 `queue_full`", ge=1
    )
    request_timeout_s: float = _opt(
        900.0, "deadline per request in seconds (504 after it)", gt=0, unit="seconds"
    )
    bulk_nice: int = _opt(
        10, "CPU priority of the bulk lane (0: share the cores evenly)", ge=0, le=19
    )
    bulk_workers: int = _opt(
        0,
        "bulk batches decoded side by side; `0` automatic: one per core (or per "
        "`AISTACK_STT_CPU_THREADS`), at most 4, on CPU; 1 on GPU",
        ge=0,
        means=AUTOMATIC,
    )
    batch_wait_s: float = _opt(
        0.25,
        "bulk lane: longest wait for a burst to arrive before batching (a lone file waits a "
        "fifth of it)",
        ge=0,
        le=10,
        unit="seconds",
    )
    separate_lanes: str = _opt(
        "auto",
        "`auto`: own bulk model copy on CPU only; `always`; `never` (one model for both lanes)",
        choices=SEPARATE_LANES,
    )


@dataclass(frozen=True)
class StreamLimits(Checked):
    """Limits of live sessions (live/); variables AISTACK_STT_STREAM_*."""

    label: ClassVar[str] = "stream"

    max_sessions: int = _opt(
        16, "live sessions at once (close 1013 `too_many_sessions` above)", ge=1
    )
    max_frame_bytes: int = _opt(
        256 * 1024, "largest audio frame (close 1009 `frame_too_large`); 8 s of audio", ge=1
    )
    idle_timeout_s: float = _opt(
        30.0,
        "no message for this long while nothing is being transcribed ends the session",
        gt=0,
        unit="seconds",
    )
    max_utterance_s: float = _opt(
        30.0,
        "an utterance longer than this (1-30 s) is finalised and continued as the next",
        ge=1,
        le=30,
        unit="seconds",
    )
    max_sessions_per_client: int = _opt(
        4,
        "live sessions at once from one client address (close 1013 `too_many_sessions`); "
        "behind a reverse proxy every client has the proxy's address",
        ge=1,
    )


@dataclass(frozen=True)
class WyomingSettings(Checked):
    """The Wyoming server (wyoming/): where it listens and how much one connection may ask of
    it; variables AISTACK_STT_WYOMING_*."""

    label: ClassVar[str] = "wyoming"

    enabled: bool = _opt(
        True, "serve Wyoming (Home Assistant) beside the HTTP API; `false`: no port is opened"
    )
    host: str = _opt("0.0.0.0", "address the Wyoming server listens on")  # noqa: S104
    port: int = port_option(
        10300,  # the port Home Assistant's Wyoming integration suggests for STT
        "TCP port of the Wyoming server; a port that cannot be bound stops the server at start "
        "(`0`: any free port)",
        means={0: "any free port"},
    )
    max_connections: int = _opt(
        16, "open Wyoming connections; the next one gets an `error` event and is closed", ge=1
    )
    max_audio_s: float = _opt(
        120.0,  # kept as 16 kHz float32: 7.7 MB at 120 s
        "seconds of audio one Wyoming request may send (1-3600; kept as 16 kHz float32, 7.7 MB "
        "at 120 s, whatever the client's format)",
        ge=1,
        le=3600,
        unit="seconds",
    )
    max_event_bytes: int = _opt(
        1024 * 1024,
        "largest header line, data block and payload of one Wyoming event, each",
        ge=4096,
    )
    idle_timeout_s: float = _opt(
        60.0,
        "a Wyoming connection that sends nothing (or reads nothing) for this long is closed",
        gt=0,
        unit="seconds",
    )
    early_decode: bool = _opt(
        True,
        "decode a request as soon as the server's VAD hears its speech end, before "
        "`audio-stop`; the result is the answer when only silence followed",
    )
    vad_silence_ms: int = _opt(
        250,
        "silence after speech that starts the early decode (Home Assistant ends a command "
        "after 700 ms)",
        ge=100,
        le=2000,
        unit="ms",
    )
    endpoint_s: float = _opt(
        0.0,
        "answer after this many seconds (0.1-10) of silence after speech without waiting for "
        "`audio-stop`, and drop the request's remaining audio; `0`: the client ends requests",
        check=_endpoint,
    )
    zeroconf: bool = _opt(
        False,
        "announce the server as `_wyoming._tcp` over mDNS, so Home Assistant discovers it "
        "(the stt_server role's `stt_server_wyoming_zeroconf`)",
    )
    zeroconf_name: str = _opt(
        "aistack-stt", "the name announced over zeroconf", check=_service_name
    )
    zeroconf_address: str = _opt(
        "",
        "the IPv4 address announced (behind a proxy device: the host's LAN address); empty: "
        "this machine's address toward the LAN",
        shown="empty",
        check=_ipv4,
    )
    zeroconf_port: int = port_option(
        0, "the port announced (behind a proxy device: the published port); `0`: `port`"
    )
    # Wyoming has no authentication, so this is its only gate besides the network.
    allow: str = _opt(
        "",
        "source networks allowed to connect over Wyoming, comma-separated CIDRs "
        "(`192.168.1.0/24,10.100.10.0/24`); empty: anyone who reaches the port",
        shown="empty",
        check=_networks,
    )

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return parse_networks(self.allow)

    def allows(self, address: str) -> bool:
        """Whether a client at `address` may connect (always, when `allow` is empty)."""
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


@dataclass(frozen=True)
class VramSettings(Checked):
    """Sharing one GPU with Ollama (vram/): what is checked before a model loads on CUDA;
    variables AISTACK_STT_VRAM_*."""

    label: ClassVar[str] = "vram"

    guard: bool = _opt(
        True,
        "on CUDA, read free GPU memory (NVML) before a model loads and make room: first this "
        "server's idle models, then idle Ollama models; 503 `insufficient_vram` when there is "
        "still too little. `false`: load and let CUDA fail",
    )
    ollama_url: str = _opt(
        "",
        "the Ollama on the same GPU (`http://127.0.0.1:11434`), asked to unload idle models "
        "(`keep_alive: 0`) when room is short; empty: Ollama is not asked",
        shown="empty",
        check=_http_url,
    )
    margin_mb: int = _opt(
        512,
        "MiB kept free on top of a model's estimated need (see [GPU memory](#gpu-memory))",
        ge=0,
        unit="MiB",
    )
    wait_s: float = _opt(
        15.0,
        "seconds to wait for the memory Ollama gives back to show up as free (0-300)",
        ge=0,
        le=300,
        unit="seconds",
    )


@dataclass(frozen=True)
class TtsSettings(Checked):
    """Speech synthesis with Piper (tts/); variables AISTACK_STT_TTS_*."""

    label: ClassVar[str] = "tts"

    voice: str = _opt(
        "",
        "a Piper voice to speak with: an `.onnx` file with its `.onnx.json` beside it, a "
        "directory holding such pairs (each one a voice; the first by name is the default), or "
        "a Piper voice name (`en_US-lessac-medium`: from the voice directory, else fetched "
        "into it from the hub at `tts hub_revision`, at start); empty: no speech synthesis. "
        "Needs `aistack-stt[tts]` (piper-tts)",
        shown="empty",
    )
    voice_dir: str = _opt(
        "",
        "where voices named by their hub name are kept: fetched once, then read from here",
        shown="`<model_dir>/voices`",
    )
    hub_revision: str = _opt(
        "v1.0.0",
        "the revision (tag or commit) of the hub's rhasspy/piper-voices that voices are fetched "
        "at; a kept voice fetched at another revision is fetched again",
        check=lambda name, value: None if value.strip() else f"{name} is empty; give a tag or "
        "a commit of rhasspy/piper-voices (v1.0.0)",
    )
    client_voices: str = _opt(
        "local",
        "which voices requests may name: `local` the server's own; `hub` also Piper voice "
        "names, fetched from the hub at `tts hub_revision` on first use",
        choices=("local", "hub"),
    )
    max_input_chars: int = _opt(
        4096,
        "longest text one request may ask to be spoken (400 `input_too_long` above it)",
        ge=1,
        le=1_000_000,
    )
    max_syntheses: int = _opt(
        1,
        "sentences synthesised at once; the sentences of all requests take turns, so a long "
        "text does not hold back a short one",
        ge=1,
    )
    max_queue: int = _opt(
        32, "syntheses admitted (waiting or speaking) before 503 `queue_full`", ge=1
    )
    nice: int = _opt(
        10,
        "CPU priority of synthesis (0-19): on a busy machine transcription goes first, so a "
        "voice command is not slowed by a long text being read aloud",
        ge=0,
        le=19,
    )
    threads: int = _opt(
        0, "ONNX Runtime threads per synthesis; `0`: one per core", ge=0, means=AUTOMATIC
    )
