"""Decode profiles and the language allow-list, per request (HTTP) and per session (live)."""

from __future__ import annotations

import asyncio
import json

import websockets
from faster_whisper import decode_audio
from stt_testkit import LiveServer, Speech


def _post(server: LiveServer, speech: Speech, **fields: str):
    with server.client() as client, speech.french_wav.open("rb") as fh:
        return client.post(
            "/v1/audio/transcriptions",
            data={"model": "base", "response_format": "verbose_json", **fields},
            files={"file": ("french.wav", fh, "audio/wav")},
        )


def test_the_allow_list_keeps_detection_among_its_languages(server, speech) -> None:
    free = _post(server, speech)
    assert free.status_code == 200 and free.json()["language"] == "fr"  # detected unbounded
    bounded = _post(server, speech, languages="de,en", decode_profile="realtime")
    assert bounded.status_code == 200, bounded.text
    assert bounded.json()["language"] in ("de", "en")


def test_unknown_profiles_and_languages_are_refused_by_name(server, speech) -> None:
    for field, value in (("decode_profile", "fastest"), ("languages", "en,klingon")):
        response = _post(server, speech, **{field: value})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["param"] == field


def test_a_live_session_keeps_to_its_own_allow_list(server, speech) -> None:
    audio = decode_audio(str(speech.french_wav), sampling_rate=16000)
    pcm = (audio.clip(-1, 1) * 32767).astype("<i2").tobytes()
    url = server.url.replace("http://", "ws://") + "/v1/audio/stream"

    async def run() -> list[dict]:
        events = []
        async with websockets.connect(url, max_size=None) as ws:
            start = {"type": "start", "model": "base", "languages": ["de", "en"]}
            await ws.send(json.dumps({**start, "profile": "accurate"}))
            for i in range(0, len(pcm), 3200):
                await ws.send(pcm[i : i + 3200])
            await ws.send(json.dumps({"type": "stop"}))
            async for message in ws:
                events.append(json.loads(message))
        return events

    events = asyncio.run(run())
    finals = [e for e in events if e["type"] == "final"]
    assert finals and all(f["language"] in ("de", "en") for f in finals), events
    assert events[0]["options"]["languages"] == ["de", "en"]
