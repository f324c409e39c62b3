"""The contract of `make apply-stt`: edit host_vars, run the play, the service follows.

A model or quantization change is applied by a reload: the service keeps answering with the
old model until the new one is ready, so a client transcribing meanwhile sees no failure.

The play runs with an inventory laid out like the generator's (inventory file plus
host_vars/<machine>.yml), so the edit is exactly the one a user makes.
"""

from __future__ import annotations

import re

import openai
from conftest import (
    Transcribing,
    apply_stt,
    health,
    inventory_with,
    main_pid,
    reloaded,
    restarted,
    run_stt_play,
    speak,
    words,
)


def _answered_every_time(client: Transcribing, sentence_words: set[str]) -> None:
    failed = [text for ok, text in client.outcomes if not ok]
    assert failed == [], failed
    wrong = [text for ok, text in client.outcomes if not set(words(text)) >= sentence_words]
    assert wrong == [], wrong


def test_switching_model_and_quantization_in_host_vars_keeps_the_service_answering(
    host, target, tmp_path, speech_dir, stt_source, restore
):
    before = main_pid(host)
    clip = speak("Please turn on the lights in the kitchen.", "en-us", speech_dir / "lights.wav")

    # tiny.en -> multilingual base while a client transcribes: the service is reloaded, not
    # restarted, and answers every request (tiny.en until base is ready, then base).
    inv = inventory_with(tmp_path, target, stt_source, stt_server_model="base")
    with Transcribing(target.url, clip) as client:
        client.wait_for(1)
        changed = apply_stt(inv)
        assert reloaded(changed) and not restarted(changed), changed
        state = health(target)
        assert (state["status"], state["model"], state["compute_type"]) == ("ok", "base", "int8")
        assert state["next_model"] is None and state["swap"]["state"] == "done"
        client.wait_for(len(client.outcomes) + 2)  # answered by base
    _answered_every_time(client, {"lights", "kitchen"})
    assert main_pid(host) == before

    # A French sentence is now recognised as French.
    clip_fr = speak(
        "Bonjour, je voudrais réserver une table pour deux personnes ce soir.",
        "fr",
        speech_dir / "table.wav",
    )
    openai_client = openai.OpenAI(base_url=f"{target.url}/v1", api_key="not-needed", timeout=120)
    with clip_fr.open("rb") as audio:
        result = openai_client.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format="verbose_json"
        )
    assert result.language in ("fr", "french")
    assert {"bonjour", "table", "soir"} <= set(words(result.text))

    # Nothing changed: nothing to do, and the service is neither reloaded nor restarted.
    assert apply_stt(inv) == []
    assert main_pid(host) == before

    # The quantization follows host_vars too, the same way.
    inv = inventory_with(
        tmp_path, target, stt_source, stt_server_model="base", stt_server_quantization="float32"
    )
    with Transcribing(target.url, clip) as client:
        client.wait_for(1)
        changed = apply_stt(inv)
        assert reloaded(changed) and not restarted(changed), changed
        client.wait_for(len(client.outcomes) + 2)
    _answered_every_time(client, {"lights", "kitchen"})
    state = health(target)
    assert (state["model"], state["compute_type"]) == ("base", "float32")
    assert main_pid(host) == before


def test_unreachable_hub_stops_the_play_naming_the_options_and_keeps_the_service(
    host, target, tmp_path, stt_source
):
    before = (main_pid(host), health(target)["model"])
    inv = inventory_with(
        tmp_path,
        target,
        stt_source,
        stt_server_model="small",
        stt_server_model_source="hub",
        stt_server_hub_timeout=5,
    )
    result = run_stt_play(inv)
    assert result.returncode != 0
    out = re.sub(r"\s+", " ", result.stdout)
    assert "stt_server_model_source is hub, but model small" in out
    for option in ("stt_server_hub_endpoint", "stt_server_model_local_path", "tiny.en, base"):
        assert option in out
    assert "Traceback" not in result.stdout + result.stderr
    # The running service was left alone: same process, same model.
    assert (main_pid(host), health(target)["model"]) == before
