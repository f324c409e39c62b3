"""Live transcription over WebSocket against a real server, real tiny.en weights and real speech.

Speech is synthesized with espeak-ng and streamed as PCM16 frames paced like a microphone, so
VAD, partials and finals see what they would see from a person talking.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import websockets
from aistack_stt.config import Settings
from faster_whisper import decode_audio
from stt_live import start, stop

UTTERANCES = (
    ("Turn on the kitchen lights.", {"kitchen", "lights"}),
    (
        "Please set a timer for ten minutes and remind me to check the oven before dinner.",
        {"timer", "oven", "dinner"},
    ),
    ("What is the weather tomorrow?", {"weather", "tomorrow"}),
)
FRAME = 3200  # bytes: 100 ms of 16 kHz PCM16


def _speak(text: str, out: Path) -> np.ndarray:
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(out), text], check=True)
    return decode_audio(str(out), sampling_rate=16000)


@pytest.fixture(scope="module")
def conversation(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Three utterances with 1.5 s pauses, as 16 kHz PCM16 bytes."""
    d = tmp_path_factory.mktemp("stream")
    pause = np.zeros(int(1.5 * 16000), dtype=np.float32)
    parts = []
    for i, (text, _) in enumerate(UTTERANCES):
        parts += [_speak(text, d / f"u{i}.wav"), pause]
    audio = np.concatenate([pause[:8000], *parts])
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


@pytest.fixture(scope="module")
def live(models_dir: Path):
    server = start(
        Settings(model="tiny.en", model_dir=models_dir, device="cpu", cpu_threads=2),
        env={
            "AISTACK_STT_STREAM_MAX_SESSIONS": "2",
            "AISTACK_STT_STREAM_IDLE_TIMEOUT_S": "2",
            "AISTACK_STT_STREAM_MAX_FRAME_BYTES": "65536",
        },
    )
    yield server
    stop(server)


def _ws_url(live) -> str:
    return live.url.replace("http://", "ws://") + "/v1/audio/stream"


async def _stream(url: str, audio: bytes, start: dict, realtime: bool = True) -> list[dict]:
    """Send `start`, the audio frame by frame, then stop; return every event until close."""
    events: list[dict] = []
    async with websockets.connect(url, max_size=None, open_timeout=30) as ws:
        await ws.send(json.dumps({"type": "start", **start}))

        async def read() -> None:
            async for message in ws:
                events.append(json.loads(message))

        reader = asyncio.create_task(read())
        began = time.monotonic()
        try:
            for n, i in enumerate(range(0, len(audio), FRAME)):
                if reader.done():
                    break  # the server ended the session (auto_end)
                await ws.send(audio[i : i + FRAME])
                if realtime:  # pace like a microphone: frame n leaves at n * 100 ms
                    await asyncio.sleep(max(0.0, began + (n + 1) * 0.1 - time.monotonic()))
            if not reader.done():
                await ws.send(json.dumps({"type": "stop"}))
        except websockets.ConnectionClosedOK:
            pass  # the server closed the session cleanly while a frame was on its way
        await asyncio.wait_for(reader, timeout=300)
        events.append({"type": "_closed", "code": ws.close_code})
    return events


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def _finals(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] == "final"]


def test_stream_gives_one_final_per_utterance_with_its_words(live, conversation):
    events = asyncio.run(
        _stream(_ws_url(live), conversation, {"partial_interval_ms": 500, "mode": "continue"})
    )
    assert events[0]["type"] == "session.started"
    finals = _finals(events)
    assert [f["utterance"] for f in finals] == [1, 2, 3], events
    for final, (_, words) in zip(finals, UTTERANCES, strict=True):
        assert words <= _words(final["text"]), (final["text"], words)
        assert final["language"] == "en"
        assert final["segments"], final
        for seg in final["segments"]:
            assert final["start"] - 0.01 <= seg["start"] < seg["end"] <= final["end"] + 0.5
    # Utterances follow one another in time.
    assert finals[0]["end"] <= finals[1]["start"] and finals[1]["end"] <= finals[2]["start"]
    assert events[-2] == {"type": "session.ended", "reason": "stop"}
    assert events[-1]["code"] == 1000

    # Partials: the committed prefix only grows, and no partial follows its utterance's final.
    partials = [e for e in events if e["type"] == "partial"]
    assert partials, "the long utterance got no partial result"
    for utterance in {p["utterance"] for p in partials}:
        committed = [p["committed"] for p in partials if p["utterance"] == utterance]
        for before, after in zip(committed, committed[1:], strict=False):
            assert after.startswith(before), (before, after)
        final_at = events.index(next(f for f in finals if f["utterance"] == utterance))
        last_partial_at = max(
            i
            for i, e in enumerate(events)
            if e["type"] == "partial" and e["utterance"] == utterance
        )
        assert last_partial_at < final_at
    for p in partials:
        assert p["text"] == f"{p['committed']} {p['unstable']}".strip()


def test_auto_end_closes_the_session_after_the_first_utterance(live, conversation):
    events = asyncio.run(
        # Silence after the speech keeps the client sending until the server ends the session.
        _stream(_ws_url(live), conversation + bytes(32000 * 60), {"mode": "auto_end"})
    )
    # The server ended the session on its own, before the client ran out of audio.
    assert not any(e["type"] == "speech.started" and e["utterance"] > 1 for e in events)
    finals = _finals(events)
    assert len(finals) == 1
    assert {"kitchen", "lights"} <= _words(finals[0]["text"])
    assert events[-2] == {"type": "session.ended", "reason": "utterance_complete"}
    assert events[-1]["code"] == 1000


async def _refusal(url: str, first: str | bytes | None) -> tuple[dict, int | None]:
    async with websockets.connect(url, open_timeout=30) as ws:
        if first is not None:
            await ws.send(first)
        event = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if event["type"] == "session.started":
            event = json.loads(await asyncio.wait_for(ws.recv(), 30))
        with pytest.raises(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 30)
        return event, ws.close_code


@pytest.mark.parametrize(
    ("first", "code", "words"),
    [
        (json.dumps({"type": "start", "mode": "forever"}), "invalid_option", "continue, auto_end"),
        (json.dumps({"type": "start", "vad_threshold": 3}), "invalid_option", "between 0 and 1"),
        (json.dumps({"type": "start", "colour": "red"}), "invalid_option", "unknown option"),
        ("not json", "invalid_message", "must be JSON"),
        (b"\x00" * 70000, "frame_too_large", "over the limit of 65536"),
        (b"\x00" * 3, "invalid_audio", "16-bit"),
        (None, "idle_timeout", "no audio or message for 2 s"),
    ],
)
def test_bad_input_gets_a_clear_error_and_a_close(live, first, code, words):
    event, close = asyncio.run(_refusal(_ws_url(live), first))
    assert event["type"] == "error" and event["code"] == code, event
    assert words in event["message"]
    assert close in (1000, 1008, 1009)


def test_session_limit_refuses_the_extra_session_and_keeps_serving_the_others(live, conversation):
    url = _ws_url(live)

    async def scenario() -> tuple[dict, int | None, list[dict]]:
        async with (
            websockets.connect(url, open_timeout=30) as a,
            websockets.connect(url, open_timeout=30) as b,
        ):
            await a.send(json.dumps({"type": "start"}))
            await b.send(json.dumps({"type": "start"}))
            for ws in (a, b):
                assert json.loads(await ws.recv())["type"] == "session.started"
            refused, code = await _refusal(url, None)
            await b.send(json.dumps({"type": "stop"}))
            ended = [json.loads(m) async for m in b]
            assert ended == [{"type": "session.ended", "reason": "stop"}]
            # The two admitted sessions still work: one transcribes a command.
            command = conversation[: 16000 * 2 * 4]
            for i in range(0, len(command), FRAME):
                await a.send(command[i : i + FRAME])
            await a.send(json.dumps({"type": "stop"}))
            events = [json.loads(m) async for m in a]
            return refused, code, events

    refused, code, events = asyncio.run(scenario())
    assert refused["code"] == "too_many_sessions"
    assert "2 live sessions" in refused["message"]
    assert code == 1013
    finals = _finals(events)
    assert finals and {"kitchen", "lights"} <= _words(finals[0]["text"])


# -- OpenAI realtime transcription sessions ---------------------------------------------------


def _to_24k(pcm16k: bytes) -> bytes:
    """OpenAI's realtime audio is 24 kHz; resample the test speech the way a client would."""
    import av

    resampler = av.AudioResampler(format="s16", layout="mono", rate=24000)
    frame = av.AudioFrame.from_ndarray(
        np.frombuffer(pcm16k, dtype="<i2").reshape(1, -1), format="s16", layout="mono"
    )
    frame.sample_rate = 16000
    out = [f.to_ndarray().tobytes() for f in resampler.resample(frame)]
    out += [f.to_ndarray().tobytes() for f in resampler.resample(None)]
    return b"".join(out)


async def _realtime(url: str, session: dict, audio24k: bytes, commit: bool, wanted: int):
    import base64

    events: list[dict] = []
    async with websockets.connect(url, open_timeout=30, subprotocols=["realtime"]) as ws:
        events.append(json.loads(await ws.recv()))
        await ws.send(json.dumps({"type": "transcription_session.update", "session": session}))
        events.append(json.loads(await ws.recv()))
        if events[-1]["type"] == "error":
            return events
        chunk = 4800  # 100 ms at 24 kHz
        for i in range(0, len(audio24k), chunk):
            b64 = base64.b64encode(audio24k[i : i + chunk]).decode()
            await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": b64}))
            await asyncio.sleep(0.025)  # four times real time
        if commit:
            await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
        done = 0
        while done < wanted:
            event = json.loads(await asyncio.wait_for(ws.recv(), 300))
            events.append(event)
            done += event["type"] == "conversation.item.input_audio_transcription.completed"
    return events


def _realtime_url(live) -> str:
    return live.url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"


def test_openai_realtime_transcription_session_with_server_vad(live, conversation):
    session = {
        "input_audio_format": "pcm16",
        "input_audio_transcription": {"model": "whisper-1", "language": "en"},
        "turn_detection": {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 500},
    }
    audio = _to_24k(conversation)
    events = asyncio.run(_realtime(_realtime_url(live), session, audio, False, 3))
    assert events[0]["type"] == "transcription_session.created"
    assert events[1]["type"] == "transcription_session.updated"
    assert events[1]["session"]["turn_detection"]["silence_duration_ms"] == 500
    kinds = [e["type"] for e in events]
    assert kinds.count("input_audio_buffer.speech_started") == 3
    assert kinds.count("input_audio_buffer.committed") == 3
    completed = [
        e for e in events if e["type"] == "conversation.item.input_audio_transcription.completed"
    ]
    for event, (_, words) in zip(completed, UTTERANCES, strict=True):
        assert words <= _words(event["transcript"]), event
    assert len({e["item_id"] for e in completed}) == 3


def test_openai_realtime_manual_commit_and_bad_format(live, conversation):
    command = _to_24k(conversation[: 16000 * 2 * 3])
    session = {"input_audio_format": "pcm16", "turn_detection": None}
    events = asyncio.run(_realtime(_realtime_url(live), session, command, True, 1))
    assert events[1]["session"]["turn_detection"] is None
    assert "input_audio_buffer.speech_started" not in [e["type"] for e in events]
    done = events[-1]
    assert done["type"] == "conversation.item.input_audio_transcription.completed"
    assert {"kitchen", "lights"} <= _words(done["transcript"])

    events = asyncio.run(
        _realtime(_realtime_url(live), {"input_audio_format": "g711_ulaw"}, b"", False, 0)
    )
    error = events[-1]
    assert error["type"] == "error" and error["error"]["param"] == "input_audio_format"
    assert "pcm16" in error["error"]["message"]
