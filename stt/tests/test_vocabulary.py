"""The household's words without a model: how the prompt is built, and names from Home
Assistant read through hass_names.py from a test double of its WebSocket API."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from aistack_stt.config import ConfigError, VocabularySettings, load_settings
from aistack_stt.hass_names import HassNames, read_token
from aistack_stt.vocabulary import Vocabulary, parse_terms
from hass_test_double import HassTestDouble, Home

TOKEN = "test-double-token-6f1c0b"
HOME = Home(
    exposed={"light.brixelby": "Brixelby lamp", "climate.quimbleton": "Quimbleton heater"},
    hidden={"switch.secret_vault": "Secret vault"},
    aliases={"light.brixelby": ["Brix light"]},
    areas=["Fennimore cottage"],
    floors=["Upstairs"],
)


@pytest.fixture
def hass():
    double = HassTestDouble(TOKEN, HOME)
    yield double
    double.close()


def test_terms_are_trimmed_and_said_once():
    assert parse_terms(" Zorblat lamp ,zorblat LAMP,, Quimby  heater ") == (
        "Zorblat lamp",
        "Quimby heater",
    )


def test_prompt_puts_home_assistant_then_server_words_then_the_requests_own():
    vocab = Vocabulary(["Zorblat lamp"], names=lambda: ["Fennimore cottage", "Zorblat lamp"])
    assert vocab.prompt_for(None, None) == "Fennimore cottage, Zorblat lamp."
    assert vocab.prompt_for("Switch it on.", "Quimby heater") == (
        "Fennimore cottage, Zorblat lamp. Quimby heater Switch it on."
    )
    assert Vocabulary().prompt_for(None, None) is None


def test_home_assistant_names_fill_only_the_room_left_with_whole_names():
    names = [f"Name{i:03d} thing" for i in range(500)]
    vocab = Vocabulary(["Zorblat lamp"], names=lambda: names, count=lambda t: len(t.split()))
    own = "word " * 200
    prompt = vocab.prompt_for(own, None)
    assert prompt.endswith(own.strip()) and "Zorblat lamp" in prompt
    listing = prompt[: prompt.index(".")]
    assert all(item in names or item == "Zorblat lamp" for item in listing.split(", "))
    assert len(listing.split()) + 200 <= 223  # Whisper's prompt budget is kept
    assert "Name000 thing" in listing and "Name499 thing" not in listing


def test_home_assistant_exposed_names_areas_and_floors_are_read(hass):
    names = HassNames(hass.url, TOKEN, refresh_s=300, timeout_s=5)
    assert names.refresh()
    assert set(names.names()) == {
        "Brixelby lamp",
        "Quimbleton heater",
        "Brix light",
        "Fennimore cottage",
        "Upstairs",
    }  # the entity not exposed to the assistant stays out


@pytest.mark.parametrize("trouble", ["wrong token", "garbage", "hang", "down"])
def test_home_assistant_in_trouble_keeps_the_last_names(hass, trouble, caplog):
    names = HassNames(hass.url, TOKEN, refresh_s=300, timeout_s=1)
    assert names.refresh()
    before = names.names()
    if trouble == "wrong token":
        hass.token = "another-token"
    elif trouble == "down":
        hass.close()
    else:
        hass.mode = trouble
    with caplog.at_level(logging.WARNING, logger="aistack_stt.hass"):
        assert not names.refresh()
    assert names.names() == before
    assert "not refreshed" in caplog.text and TOKEN not in caplog.text


def test_a_hanging_home_assistant_never_blocks_reading_the_names(hass):
    names = HassNames(hass.url, TOKEN, refresh_s=30, timeout_s=5)
    assert names.refresh()
    hass.mode = "hang"
    worker = threading.Thread(target=names.refresh)
    worker.start()
    assert hass.hanging.wait(10)
    assert "Brixelby lamp" in names.names()  # read while the fetch is stuck
    worker.join(timeout=10)  # the fetch gives up after hass_timeout_s
    assert not worker.is_alive()


def test_the_background_refresh_runs_until_stopped(hass):
    names = HassNames(hass.url, TOKEN, refresh_s=30, timeout_s=5)
    names.start()
    try:
        assert names.fetched.wait(30)
        assert "Quimbleton heater" in names.names()
    finally:
        began = time.monotonic()
        names.stop()
        assert time.monotonic() - began < 10


def test_token_comes_from_a_file_and_a_url_without_token_is_refused(tmp_path):
    token_file = tmp_path / "hass-token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    settings = VocabularySettings(hass_url="http://127.0.0.1:8123", hass_token_file=str(token_file))
    assert read_token(settings) == TOKEN
    assert TOKEN not in repr(load_settings(environ={"AISTACK_STT_HASS_TOKEN": TOKEN}))
    with pytest.raises(ConfigError, match="AISTACK_STT_HASS_TOKEN_FILE"):
        load_settings(environ={"AISTACK_STT_HASS_URL": "http://127.0.0.1:8123"})
    with pytest.raises(ConfigError, match="hass_url"):
        load_settings(environ={"AISTACK_STT_HASS_URL": "ftp://x", "AISTACK_STT_HASS_TOKEN": "t"})
    missing = VocabularySettings(hass_url="http://h:1", hass_token_file=str(tmp_path / "none"))
    with pytest.raises(ConfigError, match="cannot be read"):
        read_token(missing)
