"""Scheduling under load, through real HTTP against real tiny.en weights.

No assertion here is about speed (benchmarks in bench/ measure that); they are about what a
client sees: which request is answered first, who is refused and how, what is freed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from aistack_stt.config import ConfigError, SchedulerSettings, Settings, load_settings
from aistack_stt.scheduling import bulk_layout
from faster_whisper import decode_audio
from stt_live import serving

PARAGRAPH = (
    "The quick brown fox jumps over the lazy dog. A speech server in a small home lab gets "
    "bursts of requests from a family talking to their assistant, while someone transcribes "
    "a long recording of a meeting in the background."
)
COMMAND = "Turn on the kitchen lights."
SETTINGS = {"device": "cpu", "cpu_threads": 2, "model": "tiny.en"}


def _speak(text: str, out: Path) -> np.ndarray:
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(out), text], check=True)
    return decode_audio(str(out), sampling_rate=16000)


def _wav(audio: np.ndarray, out: Path) -> bytes:
    import wave

    with wave.open(str(out), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return out.read_bytes()


class Clips:
    def __init__(self, d: Path) -> None:
        command = _speak(COMMAND, d / "command.wav")
        paragraph = _speak(PARAGRAPH, d / "paragraph.wav")
        pause = np.zeros(16000, dtype=np.float32)
        self.command = (d / "command.wav").read_bytes()
        self.paragraph = _wav(paragraph, d / "p.wav")  # ~13 s: the bulk lane (> 10 s)
        # Long recordings: the paragraph over and over, with pauses VAD can cut at.
        self.minutes_3 = _wav(np.tile(np.concatenate([paragraph, pause]), 13), d / "m3.wav")
        self.minutes_10 = _wav(np.tile(np.concatenate([paragraph, pause]), 42), d / "m10.wav")
        assert command.shape[0] < 16000 * 10 < paragraph.shape[0]


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    return Clips(tmp_path_factory.mktemp("clips"))


@pytest.fixture(scope="module")
def roomy(models_dir: Path):
    """Default queue; commands of up to 10 s take the hot lane.

    The bulk lane waits for a burst to finish arriving until nothing came for a fifth of
    AISTACK_STT_BATCH_WAIT_S. The default (50 ms of quiet) is a race on a loaded 2-core
    machine, where six uploads can arrive further apart; 5 s (1 s of quiet) makes "requests
    sent together are batched together" hold there too, and costs a lone long file 1 s.
    """
    settings = Settings(model_dir=models_dir, **SETTINGS)
    with serving(settings, AISTACK_STT_SHORT_AUDIO_S="10", AISTACK_STT_BATCH_WAIT_S="5") as server:
        yield server


@pytest.fixture(scope="module")
def tight(models_dir: Path):
    """A queue of two, to watch refusals and disconnects."""
    settings = Settings(model_dir=models_dir, **SETTINGS)
    with serving(settings, AISTACK_STT_MAX_QUEUE="2", AISTACK_STT_SHORT_AUDIO_S="10") as server:
        yield server


@pytest.fixture(scope="module")
def hasty(models_dir: Path):
    """A one-second deadline: ten minutes of audio cannot make it."""
    settings = Settings(model_dir=models_dir, **SETTINGS)
    with serving(settings, AISTACK_STT_REQUEST_TIMEOUT_S="1") as server:
        yield server


def _post(url: str, audio: bytes, timeout: float = 600, **data) -> httpx.Response:
    return httpx.post(
        url + "/v1/audio/transcriptions",
        files={"file": ("audio.wav", audio, "audio/wav")},
        data={"model": "whisper-1", **data},
        timeout=timeout,
    )


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def _metric(url: str, name: str, **labels: str) -> float:
    body = httpx.get(url + "/metrics", timeout=30).text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name + ("{" + want + "}" if want else "")) + r" ([0-9.e+-]+)$"
    match = re.search(pattern, body, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def _wait_for(check, what: str, limit: float = 60) -> None:
    """Poll until `check()` holds; the limit only bounds a broken run, it measures nothing."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"gave up waiting for {what}")


def _scheduler(url: str) -> dict:
    return httpx.get(url + "/health", timeout=30).json()["scheduler"]


def test_a_command_is_answered_while_a_long_recording_is_still_running(roomy, clips):
    url = roomy.url
    long_done = threading.Event()
    long_result: list[httpx.Response] = []

    def long_request() -> None:
        long_result.append(_post(url, clips.minutes_3))
        long_done.set()

    worker = threading.Thread(target=long_request)
    worker.start()
    _wait_for(lambda: _scheduler(url)["running"] >= 1, "the long recording to start")
    command = _post(url, clips.command)
    still_running = not long_done.is_set()
    assert command.status_code == 200, command.text
    assert {"kitchen", "lights"} <= _words(command.json()["text"])
    assert still_running, "the command was answered only after the long recording finished"
    worker.join()
    assert long_result[0].status_code == 200
    assert "fox" in _words(long_result[0].json()["text"])


def test_simultaneous_requests_share_batches_and_all_get_their_own_words(roomy, clips):
    url = roomy.url
    before_sum = _metric(url, "aistack_stt_scheduler_batch_size_sum", lane="bulk")
    before_count = _metric(url, "aistack_stt_scheduler_batch_size_count", lane="bulk")
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: _post(url, clips.paragraph), range(6)))
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert {"fox", "lazy", "recording"} <= _words(answer.json()["text"])
    windows = _metric(url, "aistack_stt_scheduler_batch_size_sum", lane="bulk") - before_sum
    batches = _metric(url, "aistack_stt_scheduler_batch_size_count", lane="bulk") - before_count
    assert windows == 6
    assert batches < 6, "every request was decoded on its own"
    health = _scheduler(url)
    assert health["admitted"] == 0 and max(health["lanes"]["bulk"]["recent_batch_sizes"]) > 1


def test_two_long_files_at_once_are_decoded_side_by_side_by_the_bulk_workers(roomy, clips):
    health = _scheduler(roomy.url)
    # cpu_threads 2: two bulk workers, one CTranslate2 thread each.
    assert (health["bulk_workers"], health["bulk_threads_per_worker"]) == (2, 1)
    before = health["lanes"]["bulk"]["batches"]
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: _post(roomy.url, clips.paragraph), range(2)))
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert {"fox", "lazy", "recording"} <= _words(answer.json()["text"])
    bulk = _scheduler(roomy.url)["lanes"]["bulk"]
    # One worker alone would have put both windows in one batch of 2.
    assert bulk["batches"] - before == 2
    assert bulk["recent_batch_sizes"][-2:] == [1, 1]


def test_a_burst_of_commands_overflows_into_the_idle_bulk_lane(roomy, clips):
    def served(lane: str) -> float:
        return _metric(roomy.url, "aistack_stt_scheduler_requests_total", lane=lane, outcome="ok")

    hot, bulk = served("hot"), served("bulk")
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: _post(roomy.url, clips.command), range(12)))
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert {"kitchen", "lights"} <= _words(answer.json()["text"])
    # No long file was admitted, so the idle bulk workers took part of the burst.
    assert served("bulk") > bulk
    assert served("hot") > hot
    assert served("hot") + served("bulk") == hot + bulk + 12


@pytest.mark.parametrize(
    ("workers", "cpu_threads", "separate", "cpu", "cores", "layout"),
    [
        (0, 0, True, True, 2, (2, 1)),  # this machine: two single-threaded workers
        (0, 0, True, True, 16, (4, 4)),  # at most 4 workers; the cores are shared out
        (0, 6, True, True, 16, (4, 1)),  # cpu_threads caps what the workers share
        (3, 0, True, True, 2, (3, 1)),  # asked for: more workers than cores, one thread each
        (0, 0, False, True, 8, (1, 0)),  # one model for both lanes has one replica
        (0, 0, True, False, 8, (1, 0)),  # GPU: one CUDA stream unless asked
        (2, 0, True, False, 8, (2, 0)),
    ],
)
def test_bulk_lane_layout_follows_cores_and_settings(
    monkeypatch, workers, cpu_threads, separate, cpu, cores, layout
):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)))
    assert bulk_layout(workers, cpu_threads, separate=separate, cpu=cpu) == layout


def test_a_flood_beyond_the_queue_gets_503_with_retry_after_and_admitted_requests_succeed(
    tight, clips
):
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _post(tight.url, clips.paragraph), range(8)))
    ok = [a for a in answers if a.status_code == 200]
    refused = [a for a in answers if a.status_code == 503]
    assert len(ok) + len(refused) == 8, [a.status_code for a in answers]
    assert len(ok) >= 2 and refused
    for answer in ok:
        assert {"fox", "lazy"} <= _words(answer.json()["text"])
    for answer in refused:
        assert int(answer.headers["Retry-After"]) >= 1
        error = answer.json()["error"]
        assert error["code"] == "queue_full"
        assert "AISTACK_STT_MAX_QUEUE" in error["message"]
    _wait_for(lambda: _scheduler(tight.url)["admitted"] == 0, "the queue to drain")
    # Refused clients come back later and are served.
    again = _post(tight.url, clips.command)
    assert again.status_code == 200 and "kitchen" in _words(again.json()["text"])


def test_a_client_that_disconnects_mid_request_frees_its_slot(tight, clips):
    url = tight.url

    def outcomes(outcome: str) -> float:
        return _metric(url, "aistack_stt_scheduler_requests_total", lane="bulk", outcome=outcome)

    cancelled, finished = outcomes("cancelled"), outcomes("ok")
    with pytest.raises(httpx.ReadTimeout):
        _post(url, clips.minutes_10, timeout=3)  # the client gives up and hangs up
    _wait_for(lambda: _scheduler(url)["admitted"] == 0, "the abandoned request to be dropped")
    assert outcomes("cancelled") == cancelled + 1
    # It was dropped, not finished: ten minutes of audio were not decoded for nobody.
    assert outcomes("ok") == finished
    # Both places in the queue are free again.
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: _post(url, clips.command), range(2)))
    assert [a.status_code for a in answers] == [200, 200]


def test_a_request_past_its_deadline_gets_504_and_leaves_the_queue(hasty, clips):
    answer = _post(hasty.url, clips.minutes_10)
    assert answer.status_code == 504
    error = answer.json()["error"]
    assert error["code"] == "timeout" and "AISTACK_STT_REQUEST_TIMEOUT_S" in error["message"]
    _wait_for(lambda: _scheduler(hasty.url)["admitted"] == 0, "the timed-out request to leave")


def test_metrics_and_health_show_queue_and_batches(roomy, clips):
    assert _post(roomy.url, clips.command).status_code == 200
    body = httpx.get(roomy.url + "/metrics", timeout=30).text
    for name in (
        "aistack_stt_scheduler_hot_queued_windows",
        "aistack_stt_scheduler_bulk_queued_windows",
        "aistack_stt_scheduler_admitted_requests",
        "aistack_stt_scheduler_batch_size_bucket",
        "aistack_stt_scheduler_queue_wait_seconds_bucket",
    ):
        assert name in body
    health = httpx.get(roomy.url + "/health", timeout=30).json()
    assert health["scheduler"]["max_queue"] == 512
    assert set(health["scheduler"]["lanes"]) == {"hot", "bulk"}
    assert health["streams"]["active"] == 0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AISTACK_STT_MAX_QUEUE": "0"}, "max_queue 0 is invalid"),
        ({"AISTACK_STT_MAX_BATCH": "many"}, "AISTACK_STT_MAX_BATCH='many' is not a number"),
        ({"AISTACK_STT_SEPARATE_LANES": "sometimes"}, "separate_lanes 'sometimes'"),
        ({"AISTACK_STT_BULK_WORKERS": "-1"}, "bulk_workers -1 is invalid"),
        ({"AISTACK_STT_BATCH_WAIT_S": "soon"}, "AISTACK_STT_BATCH_WAIT_S='soon' is not a number"),
        ({"AISTACK_STT_STREAM_MAX_SESSIONS": "-1"}, "max_sessions -1 is invalid"),
    ],
)
def test_a_bad_tuning_variable_is_one_clear_line_and_exit_2(env, message, tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "aistack_stt.cli", "serve", "--model-dir", str(tmp_path)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert message in run.stderr and "Traceback" not in run.stderr


def test_scheduler_settings_read_the_environment():
    s = load_settings(
        environ={
            "AISTACK_STT_MAX_QUEUE": "7",
            "AISTACK_STT_MAX_BATCH": "3",
            "AISTACK_STT_BULK_WORKERS": "2",
            "AISTACK_STT_BATCH_WAIT_S": "0",
            "AISTACK_STT_SHORT_AUDIO_S": "",  # empty: the default, as for every setting
        }
    ).scheduler
    assert (s.max_queue, s.max_batch, s.bulk_workers, s.batch_wait_s) == (7, 3, 2, 0.0)
    assert s.short_audio_s == SchedulerSettings().short_audio_s
    with pytest.raises(ConfigError, match="request_timeout_s"):
        SchedulerSettings(request_timeout_s=0)
