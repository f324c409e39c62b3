"""A hostile or broken Wyoming client loses its own connection, never the server.

Each case speaks raw bytes over TCP, checks that the server closes that connection (with an
`error` event where it can still say why) and logs the reason, and then checks that the next
client, the real `wyoming` one, is answered.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from aistack_stt.wyoming import WyomingSettings
from test_wyoming import LIMITS, WyomingLive, _pcm, _until
from wyoming.info import Describe, Info

pytest_plugins = ["test_wyoming"]  # the module-scoped wyoming_server fixture


@pytest.fixture
def wy_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.INFO, logger="aistack_stt.wyoming"):
        yield caplog


def _header(kind: str, **fields: object) -> bytes:
    return json.dumps({"type": kind, **fields}).encode() + b"\n"


def _event(kind: str, data: dict | None = None, payload: bytes = b"") -> bytes:
    header: dict[str, object] = {"type": kind}
    body = json.dumps(data).encode() if data else b""
    if body:
        header["data_length"] = len(body)
    if payload:
        header["payload_length"] = len(payload)
    return json.dumps(header).encode() + b"\n" + body + payload


FORMAT = {"rate": 16000, "width": 2, "channels": 1}


async def _exchange(
    live: WyomingLive, data: bytes, close: bool = False, source: str = "127.0.0.1"
) -> list[dict]:
    """Send `data`; return the event headers the server sends until it closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port, local_addr=(source, 0))
    try:
        writer.write(data)
        await writer.drain()
        if close:
            return []
        received = await asyncio.wait_for(reader.read(), 60)  # until the server closes
    except ConnectionError:  # reset by the server while we still wrote or read: closed too
        return []
    finally:
        writer.close()
    events = []
    while received:
        line, _, received = received.partition(b"\n")
        header = json.loads(line)
        data_length = header.get("data_length", 0)
        if data_length:  # the event's data follows its header line
            header["data"] = {**header.get("data", {}), **json.loads(received[:data_length])}
        received = received[data_length + header.get("payload_length", 0) :]
        events.append(header)
    return events


async def _read_one(reader: asyncio.StreamReader) -> str:
    """The type of the next event, its data and payload read past."""
    header = json.loads(await asyncio.wait_for(reader.readline(), 60))
    await reader.readexactly(header.get("data_length", 0) + header.get("payload_length", 0))
    return header["type"]


async def _describe(live: WyomingLive) -> Info:
    async with live.client() as client:
        await client.write_event(Describe().event())
        return Info.from_event((await _until(client, "info", timeout=60))[-1])


def _logged(log: pytest.LogCaptureFixture, text: str, timeout: float = 120) -> bool:
    """Whether the server logs `text` (it may still be reading what a closed client sent)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(text in r.getMessage() for r in log.records):
            return True
        time.sleep(0.05)
    return False


def _still_serving(live: WyomingLive) -> None:
    live.wait_until_idle()
    assert asyncio.run(_describe(live)).asr[0].name == "aistack-stt"
    live.wait_until_idle()  # the next test starts with no connection left over


CLOSING_CASES = {
    "garbage bytes": (b"\x00\xff\xfe\x80garbage\x01\n", "not JSON"),
    "a header that is not JSON": (b"hello wyoming\n", "not JSON"),
    "a JSON header that is not an object": (b"[1, 2, 3]\n", "not a JSON object"),
    "a header without a type": (b'{"data": {}}\n', "no valid type"),
    "an oversized header line": (b"{" + b" " * (LIMITS.max_event_bytes + 10), "longer than"),
    "an oversized payload": (_header("audio-chunk", payload_length=10**9), "over the limit"),
    "an oversized data block": (_header("transcribe", data_length=10**8), "over the limit"),
    "a negative length": (_header("audio-chunk", payload_length=-5), "not a byte count"),
    "data that is not JSON": (
        _header("transcribe", data_length=5) + b"hello",
        "data is not JSON",
    ),
    "audio without audio-start": (
        _event("audio-chunk", FORMAT, b"\x00\x00" * 320),
        "audio-chunk without audio-start",
    ),
    "audio-stop without audio-start": (_event("audio-stop"), "audio-stop without audio-start"),
    "an audio format we cannot read": (
        _event("audio-start", {"rate": 16000, "width": 3, "channels": 1}),
        "width 3 bytes",
    ),
    "an absurd sample rate": (
        _event("audio-start", {"rate": 10**9, "width": 2, "channels": 1}),
        "rate 1000000000 Hz",
    ),
    "a model name that is not a string": (_event("transcribe", {"name": ["x"]}), "not a string"),
    "a flood of unknown events": (_event("frobnicate") * 200, "events of unknown types"),
}


@pytest.mark.parametrize("case", list(CLOSING_CASES))
def test_bad_input_closes_that_connection_with_its_reason(
    wyoming_server: WyomingLive, wy_log: pytest.LogCaptureFixture, case: str
) -> None:
    data, reason = CLOSING_CASES[case]
    events = asyncio.run(_exchange(wyoming_server, data))
    # The server said why before closing (the client may also see a reset: then no event).
    assert all(e["type"] == "error" for e in events)
    assert any(reason in r.getMessage() and "closing" in r.getMessage() for r in wy_log.records)
    _still_serving(wyoming_server)


def test_too_much_audio_in_one_request_closes_the_connection(
    wyoming_server: WyomingLive, wy_log: pytest.LogCaptureFixture
) -> None:
    one_second = _event("audio-chunk", FORMAT, b"\x00\x00" * 16000)
    seconds = int(LIMITS.max_audio_s) + 2
    data = _event("audio-start", FORMAT) + one_second * seconds + _event("audio-stop")
    events = asyncio.run(_exchange(wyoming_server, data))
    assert all(e["type"] == "error" for e in events)
    assert _logged(wy_log, "MAX_AUDIO_S")
    _still_serving(wyoming_server)


def test_an_unknown_event_is_dropped_and_the_connection_goes_on(
    wyoming_server: WyomingLive, wy_log: pytest.LogCaptureFixture
) -> None:
    """The protocol asks servers to drop unknown events, so newer clients keep working."""
    data = _event("frobnicate", {"x": 1}, b"abc") + _event("describe")

    async def run() -> str:
        reader, writer = await asyncio.open_connection("127.0.0.1", wyoming_server.port)
        writer.write(data)
        await writer.drain()
        kind = await _read_one(reader)
        writer.close()
        return kind

    assert asyncio.run(run()) == "info"
    assert _logged(wy_log, "frobnicate")
    _still_serving(wyoming_server)


def test_a_client_that_disappears_mid_stream_costs_only_its_connection(
    wyoming_server: WyomingLive, wy_log: pytest.LogCaptureFixture, speech
) -> None:
    pcm, rate, width, channels = _pcm(speech.command_wav)
    fmt = {"rate": rate, "width": width, "channels": channels}
    step = rate * width * channels // 50  # 20 ms
    chunks = [_event("audio-chunk", fmt, pcm[i : i + step]) for i in range(0, len(pcm), step)]
    half = _event("audio-start", fmt) + b"".join(chunks[: len(chunks) // 2])
    asyncio.run(_exchange(wyoming_server, _event("transcribe") + half, close=True))
    assert _logged(wy_log, "closed before audio-stop")
    # Gone right after audio-stop, while its transcription waits or runs.
    whole = half + b"".join(chunks[len(chunks) // 2 :]) + _event("audio-stop")
    asyncio.run(_exchange(wyoming_server, whole, close=True))
    _still_serving(wyoming_server)


def test_a_silent_client_is_closed_after_the_idle_timeout(
    wyoming_server: WyomingLive, wy_log: pytest.LogCaptureFixture
) -> None:
    idle = WyomingSettings(idle_timeout_s=1.5)
    wyoming_server.app.state.wyoming.settings = idle  # new connections use the short timeout
    try:
        events = asyncio.run(_exchange(wyoming_server, b""))
    finally:
        wyoming_server.app.state.wyoming.settings = LIMITS
    assert events == []
    assert _logged(wy_log, "IDLE_TIMEOUT_S")
    _still_serving(wyoming_server)


async def _hold(live: WyomingLive, sources: list[str]) -> list[tuple]:
    """Connections from these addresses, each registered (it answered a describe)."""
    held = []
    for source in sources:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", live.port, local_addr=(source, 0)
        )
        held.append((reader, writer))
        writer.write(_event("describe"))
        await writer.drain()
        assert await _read_one(reader) == "info"
    return held


def test_connections_over_the_limit_are_refused_and_the_rest_still_served(
    wyoming_server: WyomingLive, wy_log: pytest.LogCaptureFixture
) -> None:
    wyoming_server.wait_until_idle()
    # One connection per address: the server's limit is met, no address's share is.
    sources = [f"127.0.0.{n}" for n in range(1, LIMITS.max_connections + 1)]

    async def run() -> tuple[list[dict], str]:
        held = await _hold(wyoming_server, sources)
        try:
            refused = await _exchange(wyoming_server, _event("describe"), source="127.0.0.99")
            # A held connection still works while the extra one is refused.
            reader, writer = held[0]
            writer.write(_event("describe"))
            await writer.drain()
            still = await _read_one(reader)
        finally:
            for _, writer in held:
                writer.close()
        return refused, still

    refused, still = asyncio.run(run())
    assert [e["type"] for e in refused] == ["error"]
    assert "too many Wyoming connections: 3 are open" in refused[0]["data"]["text"]
    assert still == "info"
    assert _logged(wy_log, "(AISTACK_STT_WYOMING_MAX_CONNECTIONS)")
    _still_serving(wyoming_server)


def test_one_address_holds_at_most_half_the_connections_and_another_is_served(
    wyoming_server: WyomingLive, wy_log: pytest.LogCaptureFixture
) -> None:
    wyoming_server.wait_until_idle()
    share = max(2, LIMITS.max_connections // 2)

    async def run() -> list[dict]:
        held = await _hold(wyoming_server, ["127.0.0.2"] * share)
        try:
            refused = await _exchange(wyoming_server, _event("describe"), source="127.0.0.2")
            # _hold asserts that the other address gets its info.
            served = await _hold(wyoming_server, ["127.0.0.3"])
            served[0][1].close()
        finally:
            for _, writer in held:
                writer.close()
        return refused

    refused = asyncio.run(run())
    assert [e["type"] for e in refused] == ["error"]
    assert refused[0]["data"]["code"] == "too_many_connections"
    assert f"from this address: {share} are open" in refused[0]["data"]["text"]
    assert _logged(wy_log, "half of AISTACK_STT_WYOMING_MAX_CONNECTIONS")
    _still_serving(wyoming_server)


def test_an_address_outside_the_allow_list_is_refused(
    wyoming_server: WyomingLive, wy_log: pytest.LogCaptureFixture
) -> None:
    wyoming = wyoming_server.app.state.wyoming
    wyoming.settings = replace(LIMITS, allow="10.0.0.0/8, 192.168.0.0/16")
    try:
        events = asyncio.run(_exchange(wyoming_server, _event("describe")))
    finally:
        wyoming.settings = LIMITS
    assert events == []
    assert _logged(wy_log, "AISTACK_STT_WYOMING_ALLOW")
    wyoming.settings = replace(LIMITS, allow="10.0.0.0/8,127.0.0.0/8")
    try:
        _still_serving(wyoming_server)
    finally:
        wyoming.settings = LIMITS
