"""Model from a directory on the controller, and bad settings refused before any restart."""

from __future__ import annotations

import re

from conftest import ROOT, apply_stt, health, inventory_with, main_pid, restarted, run_stt_play

LOCAL_MODEL = ROOT / ".cache" / "models" / "tiny.en"


def test_local_model_directory_is_copied_once_and_served_under_its_name(
    host, target, tmp_path, stt_source, restore
):
    assert (LOCAL_MODEL / "model.bin").is_file(), "run scripts/fetch-test-models first"
    inv = inventory_with(
        tmp_path,
        target,
        stt_source,
        stt_server_model="office-tiny",
        stt_server_model_source="local",
        stt_server_model_local_path=str(LOCAL_MODEL),
    )
    changed = apply_stt(inv)
    assert any("Copy into the container the model directory" in t for t in changed)
    assert restarted(changed)
    assert health(target)["model"] == "office-tiny"
    assert host.file("/var/lib/aistack-stt/models/office-tiny/model.bin").user == "aistack-stt"

    # Unchanged directory: not copied again, no restart.
    assert apply_stt(inv) == []


def test_quantization_the_cpu_cannot_run_is_refused_before_the_service_restarts(
    host, target, tmp_path, stt_source
):
    before = (main_pid(host), health(target)["compute_type"])
    inv = inventory_with(tmp_path, target, stt_source, stt_server_quantization="float16")
    result = run_stt_play(inv)
    assert result.returncode != 0
    out = re.sub(r"\s+", " ", result.stdout)
    assert "stt_server_quantization float16 needs an NVIDIA GPU" in out
    assert "Traceback" not in result.stdout + result.stderr
    assert (main_pid(host), health(target)["compute_type"]) == before
