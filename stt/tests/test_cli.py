"""`aistack-stt serve` as systemd runs it: configured by AISTACK_STT_* variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from aistack_stt.config import ConfigError, load_settings
from stt_testkit import Speech

from tests.helpers.stt_server import free_port, start_process

# `python -m aistack_stt.cli` is what the console script runs; PYTHONPATH (conftest.py)
# makes it this checkout's code.
EXE = [sys.executable, "-m", "aistack_stt.cli"]


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AISTACK_STT_", "HF_HUB_OFFLINE", "HF_ENDPOINT"))
    }
    env.update(extra)
    return env


@pytest.mark.parametrize(
    ("args", "env", "needle"),
    [
        (["--device", "tpu"], {}, "device 'tpu'"),
        ([], {"AISTACK_STT_COMPUTE_TYPE": "int3"}, "compute_type 'int3'"),
        ([], {"AISTACK_STT_PORT": "eighty"}, "AISTACK_STT_PORT='eighty' is not a number"),
        (["--model-ttl", "-5"], {}, "model_ttl -5"),
        (["--port", "70000"], {}, "port 70000"),
    ],
)
def test_bad_settings_exit_2_with_one_line_and_no_traceback(
    args: list[str], env: dict[str, str], needle: str
) -> None:
    proc = subprocess.run(
        [*EXE, "serve", *args], env=_env(**env), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert needle in proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


def test_flags_override_environment_and_empty_means_unset() -> None:
    settings = load_settings(
        {"port": "9000", "language": None},
        environ={"AISTACK_STT_PORT": "8001", "AISTACK_STT_LANGUAGE": "", "AISTACK_STT_API_KEY": ""},
    )
    assert settings.port == 9000
    assert settings.language is None and settings.api_key is None
    with pytest.raises(ConfigError, match="beam_size"):
        load_settings(environ={"AISTACK_STT_BEAM_SIZE": "0"})


def test_serve_from_environment_answers_health_transcribes_and_uses_hf_endpoint(
    models_dir: Path, speech: Speech, tmp_path: Path
) -> None:
    closed_port = free_port()
    settings = dict(
        AISTACK_STT_MODEL=str(models_dir / "tiny.en"),
        AISTACK_STT_MODEL_DIR=str(models_dir),
        AISTACK_STT_DEVICE="cpu",
        AISTACK_STT_COMPUTE_TYPE="int8",
        AISTACK_STT_API_KEY="k",
        AISTACK_STT_LANGUAGE="en",
        AISTACK_STT_CLIENT_MODELS="hub",  # clients may ask for hub models (the default: no)
        # A mirror that is down: the hub must be asked there (not offline), and the failure
        # say so.
        HF_ENDPOINT=f"http://127.0.0.1:{closed_port}",
        HF_HUB_OFFLINE=None,
    )
    # Until it has settled ("ok" or "error"), so that the status below is the assertion.
    server = start_process(settings, log=tmp_path / "serve.log", timeout=90, ready=False)
    try:
        url = server.url
        body = server.health()
        assert body["status"] == "ok", body
        assert body["model"] == str(models_dir / "tiny.en")
        assert body["compute_type"] == "int8" and body["device"] == "cpu"
        resp = httpx.post(
            url + "/v1/audio/transcriptions",
            files={"file": speech.command_wav.open("rb")},
            headers={"Authorization": "Bearer k"},
            timeout=60,
        )
        assert resp.status_code == 200, resp.text
        assert "kitchen" in resp.json()["text"].lower()
        hub = httpx.post(
            url + "/v1/audio/transcriptions",
            files={"file": speech.command_wav.open("rb")},
            data={"model": "Systran/faster-whisper-small"},
            headers={"Authorization": "Bearer k"},
            timeout=60,
        )
        assert hub.status_code == 503, hub.text
        message = hub.json()["error"]["message"]
        assert f"http://127.0.0.1:{closed_port}/Systran/faster-whisper-small" in message
    finally:
        server.stop(timeout=30)


def test_every_setting_is_a_flag_and_the_readme_table_is_the_settings_tree() -> None:
    from aistack_stt.cli import _parser
    from aistack_stt.config import leaves, markdown_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    serve = _parser()._subparsers._group_actions[0].choices["serve"]
    flags = {opt for action in serve._actions for opt in action.option_strings}
    names = {leaf.flag for leaf in leaves()}
    assert names <= flags and len(names) == 79
    start = readme.index("| flag | environment | default | meaning |")
    end = readme.index("<!-- end of settings table -->")
    assert readme[start:end].strip() == markdown_table(), (
        "stt/README.md's settings table differs from the settings tree; paste the output of "
        "python -c 'from aistack_stt.config import markdown_table; print(markdown_table())'"
    )


def test_a_scheduler_setting_given_as_a_flag_wins_over_the_environment() -> None:
    settings = load_settings(
        {"max_queue": "3", "stream_max_sessions": ""},
        environ={"AISTACK_STT_MAX_QUEUE": "9", "AISTACK_STT_STREAM_MAX_SESSIONS": "2"},
    )
    assert settings.scheduler.max_queue == 3
    assert settings.stream.max_sessions == 16  # an empty flag unsets: the default


def test_every_wrong_setting_is_named_at_once(tmp_path) -> None:
    proc = subprocess.run(
        [*EXE, "serve", "--port", "0", "--max-batch", "0", "--stream-idle-timeout-s", "x"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [
        "aistack-stt: error: --stream-idle-timeout-s='x' is not a number",
        "aistack-stt: error: max_batch 0 is invalid; use 1 or more",
        "aistack-stt: error: port 0 is out of range; use 1-65535",
    ]


def _check(env_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*EXE, "check", "--env-file", str(env_file)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_names_every_unknown_or_bad_setting_of_an_env_file(tmp_path):
    env_file = tmp_path / "aistack-stt.env"
    env_file.write_text(
        "# written by the stt_server role\n"
        "AISTACK_STT_PORT=8000\n"
        "AISTACK_STT_MAX_QEUE=3\n"
        "AISTACK_STT_BULK_WORKERS=-1\n"
        "HF_ENDPOINT=https://hub.invalid\n"
    )
    run = _check(env_file)
    assert run.returncode == 2
    assert run.stderr.splitlines() == [
        "aistack-stt: error: AISTACK_STT_MAX_QEUE is not a setting of aistack-stt; "
        "did you mean AISTACK_STT_MAX_QUEUE?",
        "aistack-stt: error: bulk_workers -1 is invalid; use 0 (automatic) or more",
    ]


def test_check_names_all_five_wrong_values_of_an_env_file_not_just_the_first(tmp_path):
    env_file = tmp_path / "aistack-stt.env"
    env_file.write_text(
        "AISTACK_STT_PORT=0\n"
        "AISTACK_STT_BEAM_SIZE=0\n"
        "AISTACK_STT_DEVICE=tpu\n"
        "AISTACK_STT_MAX_BATCH=0\n"
        "AISTACK_STT_WYOMING_ALLOW=lan\n"
    )
    run = _check(env_file)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert sorted(run.stderr.splitlines()) == [
        "aistack-stt: error: beam_size 0 is invalid; use 1 or more",
        "aistack-stt: error: device 'tpu' is not one of auto, cpu, cuda",
        "aistack-stt: error: max_batch 0 is invalid; use 1 or more",
        "aistack-stt: error: port 0 is out of range; use 1-65535",
        "aistack-stt: error: wyoming allow: 'lan' is not a network; use CIDRs such as "
        "192.168.1.0/24, separated by commas",
    ]


def test_check_accepts_valid_settings_and_says_so(tmp_path):
    env_file = tmp_path / "aistack-stt.env"
    env_file.write_text(
        "AISTACK_STT_DEVICE=cpu\nAISTACK_STT_MAX_QUEUE=64\nAISTACK_STT_STREAM_MAX_SESSIONS='4'\n"
    )
    run = _check(env_file)
    assert (run.returncode, run.stdout.strip(), run.stderr) == (0, "aistack-stt: settings OK", "")


def test_check_of_a_missing_env_file_is_one_line(tmp_path):
    run = _check(tmp_path / "absent.env")
    assert run.returncode == 2
    assert "cannot read" in run.stderr and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


def test_the_readme_inside_table_names_every_module() -> None:
    stt = Path(__file__).resolve().parents[1]
    package = stt / "src" / "aistack_stt"
    readme = (stt / "README.md").read_text()
    inside = readme[readme.index("## Inside") : readme.index("## Tests")]
    modules = {
        str(p.relative_to(package)) for p in package.rglob("*.py") if p.name != "__init__.py"
    }
    missing = sorted(m for m in modules if f"| `{m}` |" not in inside)
    assert not missing, f"stt/README.md's Inside table does not name {missing}"
