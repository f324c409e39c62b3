"""What an OpenAI audio client sees when it sends speech: the words, in every format."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from openai import OpenAI
from stt_testkit import LiveServer, Speech


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _heard_command(text: str) -> bool:
    """The command's key words came back (espeak speech is clear enough for tiny.en)."""
    return {"kitchen", "lights", "timer"} <= _words(text)


@pytest.fixture(scope="module")
def openai_client(server: LiveServer) -> OpenAI:
    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def test_openai_client_gets_the_spoken_words(openai_client: OpenAI, speech: Speech) -> None:
    with speech.command_wav.open("rb") as fh:
        result = openai_client.audio.transcriptions.create(model="whisper-1", file=fh)
    assert _heard_command(result.text), result.text


@pytest.mark.parametrize(
    "variant", ["wav", "mp3", "ogg-opus", "webm-opus", "m4a-aac", "flac", "pcm", "wav-stereo-48k"]
)
def test_every_audio_container_is_decoded_and_transcribed(
    server: LiveServer, speech: Speech, variant: str
) -> None:
    path, content_type = speech.variants[variant]
    with server.client() as http:
        resp = http.post(
            "/v1/audio/transcriptions",
            files={"file": (path.name, path.read_bytes(), content_type)},
            data={"model": "tiny.en", "response_format": "verbose_json"},
        )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert _heard_command(body["text"]), body
    # Resampled to 16 kHz correctly: the duration is the spoken length whatever the input
    # rate (22.05, 44.1, 48 kHz; stereo mixed down), give or take codec padding.
    assert abs(body["duration"] - speech.duration) < 0.15, body["duration"]


def test_text_format_is_plain_text(openai_client: OpenAI, speech: Speech) -> None:
    with speech.command_wav.open("rb") as fh:
        text = openai_client.audio.transcriptions.create(
            model="whisper-1", file=fh, response_format="text"
        )
    assert isinstance(text, str)
    assert _heard_command(text)
    assert not text.lstrip().startswith("{")


def test_verbose_json_has_segments_language_and_duration(
    openai_client: OpenAI, speech: Speech
) -> None:
    with speech.command_wav.open("rb") as fh:
        result = openai_client.audio.transcriptions.create(
            model="whisper-1", file=fh, response_format="verbose_json"
        )
    assert _heard_command(result.text)
    assert result.language == "en"
    assert 3.0 < result.duration < 5.0  # espeak says this sentence in about 4 s
    assert result.segments, "verbose_json must list segments"
    assert "".join(s.text for s in result.segments).strip() == result.text
    for seg in result.segments:
        assert 0 <= seg.start <= seg.end <= result.duration + 0.5


def test_word_timestamps_are_ordered_and_cover_the_words(
    openai_client: OpenAI, speech: Speech
) -> None:
    with speech.command_wav.open("rb") as fh:
        result = openai_client.audio.transcriptions.create(
            model="whisper-1",
            file=fh,
            response_format="verbose_json",
            timestamp_granularities=["word"],
        )
    words = result.words
    assert words, "word granularity must return words"
    assert {"kitchen", "lights"} <= _words(" ".join(w.word for w in words))
    starts = [w.start for w in words]
    assert starts == sorted(starts)
    assert all(w.start <= w.end for w in words)


_SRT_TIME = r"(\d{2}):(\d{2}):(\d{2}),(\d{3})"
_VTT_TIME = r"(\d{2}):(\d{2}):(\d{2})\.(\d{3})"


def _seconds(match: tuple[str, ...]) -> float:
    h, m, s, ms = (int(x) for x in match)
    return h * 3600 + m * 60 + s + ms / 1000


def _subtitles(server: LiveServer, speech: Speech, fmt: str) -> httpx.Response:
    """The command transcribed as `fmt` (srt or vtt), a 200 response."""
    with server.client() as http:
        resp = http.post(
            "/v1/audio/transcriptions",
            files={"file": speech.command_wav.open("rb")},
            data={"response_format": fmt},
        )
    assert resp.status_code == 200
    return resp


def test_srt_is_valid_subrip(server: LiveServer, speech: Speech) -> None:
    resp = _subtitles(server, speech, "srt")
    blocks = [b for b in resp.text.strip().split("\n\n") if b.strip()]
    assert blocks
    last_end = 0.0
    for number, block in enumerate(blocks, start=1):
        lines = block.split("\n")
        assert lines[0] == str(number)
        m = re.fullmatch(f"{_SRT_TIME} --> {_SRT_TIME}", lines[1])
        assert m, lines[1]
        start, end = _seconds(m.groups()[:4]), _seconds(m.groups()[4:])
        assert last_end <= start <= end
        last_end = end
        assert " ".join(lines[2:]).strip()
    assert _heard_command(resp.text)


def test_vtt_is_valid_webvtt(server: LiveServer, speech: Speech) -> None:
    resp = _subtitles(server, speech, "vtt")
    head, *cues = resp.text.strip().split("\n\n")
    assert head == "WEBVTT"
    assert cues
    for cue in cues:
        timing, *text = cue.split("\n")
        m = re.fullmatch(f"{_VTT_TIME} --> {_VTT_TIME}", timing)
        assert m, timing
        assert _seconds(m.groups()[:4]) <= _seconds(m.groups()[4:])
        assert " ".join(text).strip()
    assert _heard_command(resp.text)


def test_openai_stream_deltas_add_up_to_the_final_text(
    openai_client: OpenAI, speech: Speech
) -> None:
    with speech.command_wav.open("rb") as fh:
        stream = openai_client.audio.transcriptions.create(model="whisper-1", file=fh, stream=True)
        events = list(stream)
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]
    done = [e for e in events if e.type == "transcript.text.done"]
    assert deltas and len(done) == 1
    assert events[-1].type == "transcript.text.done"
    assert "".join(deltas) == done[0].text
    assert _heard_command(done[0].text)


def test_raw_sse_stream_parses_event_by_event(server: LiveServer, speech: Speech) -> None:
    with (
        server.client() as http,
        http.stream(
            "POST",
            "/v1/audio/transcriptions",
            files={"file": speech.command_wav.open("rb")},
            data={"stream": "true", "model": "whisper-1"},
        ) as resp,
    ):
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        body = resp.read().decode()
    events = []
    for block in body.split("\n\n"):
        if block.strip():
            assert block.startswith("data: "), block
            events.append(json.loads(block[len("data: ") :]))
    assert [e["type"] for e in events][-1] == "transcript.text.done"
    text = "".join(e["delta"] for e in events if e["type"] == "transcript.text.delta")
    assert text == events[-1]["text"]


def test_prompt_and_temperature_are_accepted(server: LiveServer, speech: Speech) -> None:
    with server.client() as http:
        resp = http.post(
            "/v1/audio/transcriptions",
            files={"file": speech.command_wav.open("rb")},
            data={"prompt": "Home automation commands.", "temperature": "0.2", "language": "en"},
        )
    assert resp.status_code == 200, resp.text
    assert _heard_command(resp.json()["text"])


def test_subtitle_timestamps_carry_hours_and_milliseconds() -> None:
    from aistack_stt.formats import _timestamp

    assert _timestamp(3723.5, ",") == "01:02:03,500"
    assert _timestamp(59.9996, ".") == "00:01:00.000"
    assert _timestamp(-0.2, ",") == "00:00:00,000"
