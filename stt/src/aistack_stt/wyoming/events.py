"""Wyoming event framing: one JSON header line, then optional data and payload bytes.

    {"type": "audio-chunk", "data_length": 57, "payload_length": 640, "version": "1.5.0"}\\n
    <57 bytes of JSON, merged into the header's "data">
    <640 bytes of payload>

Reading is strict and bounded: anything that does not fit this shape, or is larger than the
connection's limit, raises `ProtocolError` with a reason for the log, and the caller closes
that one connection.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

# The protocol version our events say they follow (the wyoming package's, when written).
PROTOCOL_VERSION = "1.5.0"
_TYPE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class ProtocolError(Exception):
    """The peer sent something that is not a Wyoming event we can accept."""


@dataclass
class Event:
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    payload: bytes | None = None


async def read_event(reader: asyncio.StreamReader, max_bytes: int) -> Event | None:
    """The next event, or None when the peer closed the connection between events.

    `max_bytes` bounds the header line, the data and the payload, each; the reader's own
    `limit` (set by the server) must be at least as large for the header line.
    """
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ProtocolError("connection closed in the middle of an event header") from None
    except asyncio.LimitOverrunError:
        raise ProtocolError(f"event header longer than {max_bytes} bytes") from None
    if len(line) > max_bytes:
        raise ProtocolError(f"event header longer than {max_bytes} bytes")
    header = _json_object(line, "event header")
    kind = header.get("type")
    if not isinstance(kind, str) or not _TYPE.match(kind):
        raise ProtocolError(f"event header has no valid type: {_preview(line)}")
    data = header.get("data") or {}
    if not isinstance(data, dict):
        raise ProtocolError(f"{kind}: data is not a JSON object")
    data_length = _length(header, "data_length", kind, max_bytes)
    payload_length = _length(header, "payload_length", kind, max_bytes)
    try:
        if data_length:
            extra = _json_object(await reader.readexactly(data_length), f"{kind}: data")
            data = {**data, **extra}
        payload = await reader.readexactly(payload_length) if payload_length else None
    except asyncio.IncompleteReadError:
        raise ProtocolError(f"connection closed in the middle of a {kind} event") from None
    return Event(kind, data, payload)


def encode_event(event: Event) -> bytes:
    header: dict[str, Any] = {"type": event.type, "version": PROTOCOL_VERSION}
    data = b""
    if event.data:
        data = json.dumps(event.data, ensure_ascii=False).encode("utf-8")
        header["data_length"] = len(data)
    if event.payload:
        header["payload_length"] = len(event.payload)
    line = json.dumps(header, ensure_ascii=False).encode("utf-8") + b"\n"
    return line + data + (event.payload or b"")


async def write_event(writer: asyncio.StreamWriter, event: Event) -> None:
    writer.write(encode_event(event))
    await writer.drain()


def _length(header: dict[str, Any], name: str, kind: str, max_bytes: int) -> int:
    value = header.get(name)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProtocolError(f"{kind}: {name} {value!r} is not a byte count")
    if value > max_bytes:
        raise ProtocolError(f"{kind}: {name} {value} is over the limit of {max_bytes} bytes")
    return value


def _preview(raw: bytes) -> str:
    """A short, printable rendering of what the peer sent, for the log."""
    return repr(raw[:60].strip()) + ("..." if len(raw) > 60 else "")


def _json_object(raw: bytes, what: str) -> dict[str, Any]:
    """`raw` as a JSON object; a `ProtocolError` naming `what` when it is not one."""
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ProtocolError(f"{what} is not JSON: {_preview(raw)}") from None
    if not isinstance(value, dict):
        raise ProtocolError(f"{what} is not a JSON object: {_preview(raw)}")
    return value
