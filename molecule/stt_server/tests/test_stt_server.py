"""What a user of the converged container sees: a hardened service that transcribes speech."""

from __future__ import annotations

import openai
from conftest import health, speak, words


def test_service_runs_as_its_own_system_user(host):
    user = host.user("aistack-stt")
    assert user.exists
    assert user.uid < 1000
    assert user.shell == "/usr/sbin/nologin"
    main_pid = host.check_output("systemctl show --value -p MainPID aistack-stt")
    assert host.check_output(f"ps -o user= -p {main_pid}") == "aistack-stt"


def test_unit_is_enabled_active_and_hardened(host):
    service = host.service("aistack-stt")
    assert service.is_enabled
    assert service.is_running
    props = dict(
        line.split("=", 1)
        for line in host.check_output(
            "systemctl show aistack-stt -p User -p ProtectSystem -p PrivateTmp"
            " -p NoNewPrivileges -p ReadWritePaths -p Restart"
        ).splitlines()
    )
    assert props["User"] == "aistack-stt"
    assert props["ProtectSystem"] == "strict"
    assert props["PrivateTmp"] == "yes"
    assert props["NoNewPrivileges"] == "yes"
    assert props["ReadWritePaths"] == "/var/lib/aistack-stt"
    assert props["Restart"] == "on-failure"


def test_running_service_sees_a_read_only_system_and_a_writable_state_dir(host):
    pid = host.check_output("systemctl show --value -p MainPID aistack-stt")
    mounts = {}
    for line in host.check_output(f"cat /proc/{pid}/mountinfo").splitlines():
        fields = line.split()
        mounts[fields[4]] = fields[5].split(",")[0]  # mount point -> ro|rw
    assert mounts["/"] == "ro"
    assert mounts["/var/lib/aistack-stt"] == "rw"
    assert mounts["/tmp"] == "rw"  # its own private /tmp


def test_port_8000_is_listening_on_all_addresses(host):
    assert host.socket("tcp://0.0.0.0:8000").is_listening


def test_health_reports_model_and_compute_type_from_host_vars(target):
    state = health(target)
    assert state["status"] == "ok"
    assert state["model"] == target.base_host_vars["stt_server_model"]
    assert state["device"] == "cpu"
    assert state["compute_type"] == "int8"


def test_spoken_sentence_comes_back_as_the_same_words(target, speech_dir):
    sentence = "Please turn on the lights in the kitchen."
    clip = speak(sentence, "en-us", speech_dir / "kitchen.wav")
    client = openai.OpenAI(base_url=f"{target.url}/v1", api_key="not-needed", timeout=120)
    with clip.open("rb") as audio:
        result = client.audio.transcriptions.create(model="whisper-1", file=audio)
    assert words(result.text) == words(sentence)


def test_without_a_gpu_no_cuda_wheels_are_installed_and_health_has_no_vram(host, target):
    # stt_server_cuda_packages go in only when the container has a GPU; this one has none.
    pip = host.run("/opt/aistack-stt/venv/bin/pip show nvidia-cublas-cu12 nvidia-ml-py")
    assert pip.rc != 0 and "not found" in (pip.stderr + pip.stdout).lower()
    env = host.file("/etc/aistack-stt/aistack-stt.env").content_string
    assert "AISTACK_STT_VRAM_OLLAMA_URL=\n" in env  # no Ollama shares a GPU here
    assert "LD_LIBRARY_PATH" not in env
    assert "vram" not in health(target)  # the GPU memory guard runs on CUDA only
