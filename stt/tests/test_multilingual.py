"""Multilingual base: language detection and translation of French speech to English."""

from __future__ import annotations

import re

from openai import OpenAI
from stt_testkit import LiveServer, Speech


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-zéèàç']+", text.lower()))


def test_language_is_detected_for_french_and_english(server: LiveServer, speech: Speech) -> None:
    client = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    with speech.french_wav.open("rb") as fh:
        fr = client.audio.transcriptions.create(
            model="base", file=fh, response_format="verbose_json"
        )
    with speech.command_wav.open("rb") as fh:
        en = client.audio.transcriptions.create(
            model="base", file=fh, response_format="verbose_json"
        )
    assert fr.language == "fr"
    assert {"bonjour", "croissant"} <= _words(fr.text), fr.text
    assert en.language == "en"


def test_french_speech_translates_to_english(server: LiveServer, speech: Speech) -> None:
    client = OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    with speech.french_wav.open("rb") as fh:
        result = client.audio.translations.create(model="base", file=fh)
    words = _words(result.text)
    assert "coffee" in words, result.text
    assert not words & {"bonjour", "je", "voudrais", "café"}, result.text


def test_translation_supports_subtitle_formats(server: LiveServer, speech: Speech) -> None:
    with server.client() as http:
        resp = http.post(
            "/v1/audio/translations",
            files={"file": speech.french_wav.open("rb")},
            data={"model": "base", "response_format": "vtt"},
        )
    assert resp.status_code == 200, resp.text
    assert resp.text.startswith("WEBVTT\n\n")
    assert "coffee" in resp.text.lower()
