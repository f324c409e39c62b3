"""Model from a directory on the controller, and bad settings refused before any restart."""

from __future__ import annotations

import re

from conftest import (
    ROOT,
    apply_stt,
    health,
    inventory_with,
    main_pid,
    reloaded,
    restarted,
    run_stt_play,
)

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
    before = main_pid(host)
    changed = apply_stt(inv)
    assert any("Copy into the container the model directory" in t for t in changed)
    assert reloaded(changed) and not restarted(changed), changed  # a model change: a reload
    assert health(target)["model"] == "office-tiny"
    assert main_pid(host) == before
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


def test_tuning_reaches_the_service_and_a_bad_setting_is_refused_before_any_restart(
    host, target, tmp_path, stt_source, restore
):
    tuned = inventory_with(
        tmp_path, target, stt_source, stt_server_tuning={"max_queue": 64, "bulk_workers": 1}
    )
    assert restarted(apply_stt(tuned))
    scheduler = health(target)["scheduler"]
    assert (scheduler["max_queue"], scheduler["bulk_workers"]) == (64, 1)
    before = main_pid(host)

    for tuning, message in (
        (
            {"max_qeue": 8},
            "AISTACK_STT_MAX_QEUE is not a setting of aistack-stt; "
            "did you mean AISTACK_STT_MAX_QUEUE?",
        ),
        ({"bulk_workers": -2}, "bulk_workers -2 is invalid"),
        ({"port": 9000}, "use stt_server_port instead"),
    ):
        result = run_stt_play(
            inventory_with(tmp_path, target, stt_source, stt_server_tuning=tuning)
        )
        assert result.returncode != 0, tuning
        out = re.sub(r"\s+", " ", result.stdout)
        assert message in out, out[-3000:]
        assert "Traceback" not in result.stdout + result.stderr
        # The service still runs, untouched, with the last good settings.
        assert main_pid(host) == before
        assert health(target)["scheduler"]["max_queue"] == 64
