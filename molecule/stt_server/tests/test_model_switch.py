"""The contract of `make apply-stt`: edit host_vars, run the play, the service follows.

The play runs with an inventory laid out like the generator's (inventory file plus
host_vars/<machine>.yml), so the edit is exactly the one a user makes.
"""

from __future__ import annotations

import re

import openai
from conftest import (
    apply_stt,
    health,
    inventory_with,
    main_pid,
    restarted,
    run_stt_play,
    speak,
    words,
)


def test_switching_model_and_quantization_in_host_vars_takes_effect(
    host, target, tmp_path, speech_dir, stt_source, restore
):
    before = main_pid(host)

    # tiny.en -> multilingual base: the service restarts and reports the new model.
    inv = inventory_with(tmp_path, target, stt_source, stt_server_model="base")
    assert restarted(apply_stt(inv))
    state = health(target)
    assert (state["status"], state["model"], state["compute_type"]) == ("ok", "base", "int8")
    switched = main_pid(host)
    assert switched != before

    # A French sentence is now recognised as French.
    clip = speak(
        "Bonjour, je voudrais réserver une table pour deux personnes ce soir.",
        "fr",
        speech_dir / "table.wav",
    )
    client = openai.OpenAI(base_url=f"{target.url}/v1", api_key="not-needed", timeout=120)
    with clip.open("rb") as audio:
        result = client.audio.transcriptions.create(
            model="whisper-1", file=audio, response_format="verbose_json"
        )
    assert result.language in ("fr", "french")
    assert {"bonjour", "table", "soir"} <= set(words(result.text))

    # Nothing changed: nothing to do, and the service is not restarted.
    assert apply_stt(inv) == []
    assert main_pid(host) == switched

    # The quantization follows host_vars too.
    inv = inventory_with(
        tmp_path, target, stt_source, stt_server_model="base", stt_server_quantization="float32"
    )
    assert restarted(apply_stt(inv))
    state = health(target)
    assert (state["model"], state["compute_type"]) == ("base", "float32")


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
