"""Changing the model of a running `aistack-stt serve`: edit its model env file, SIGHUP.

As systemd runs it: the model settings come from the environment at start (systemd reads the
unit's EnvironmentFile), `AISTACK_STT_MODEL_ENV_FILE` names that file, and `systemctl reload`
sends SIGHUP. A client transcribes in a loop the whole time; not one of its requests may fail.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import openai
import pytest
from aistack_stt.config import Settings, load_settings
from aistack_stt.config_options import ConfigError
from aistack_stt.model_reload import read_plan
from stt_testkit import Speech

from tests.helpers.stt_server import ServerProcess, start_process

WORDS = {"kitchen", "lights", "timer"}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


@dataclass
class Outcome:
    ok: bool
    text: str


@dataclass
class Transcribing:
    """A client transcribing the command over and over on its own thread (the official
    openai client, whisper-1 as Open WebUI asks), keeping every outcome."""

    url: str
    audio: Path
    outcomes: list[Outcome] = field(default_factory=list)
    _done: threading.Condition = field(default_factory=threading.Condition)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        client = openai.OpenAI(base_url=f"{self.url}/v1", api_key="unused", timeout=120,
                               max_retries=0)  # fmt: skip
        while not self._stop.is_set():
            try:
                with self.audio.open("rb") as audio:
                    text = client.audio.transcriptions.create(model="whisper-1", file=audio).text
                outcome = Outcome(True, text)
            except openai.OpenAIError as exc:
                outcome = Outcome(False, f"{type(exc).__name__}: {exc}")
            with self._done:
                self.outcomes.append(outcome)
                self._done.notify_all()

    def wait_for(self, count: int, timeout: float = 300) -> None:
        """Until `count` requests have been answered in all (a bound, not a pace)."""
        with self._done:
            assert self._done.wait_for(lambda: len(self.outcomes) >= count, timeout), (
                f"only {len(self.outcomes)} of {count} requests answered"
            )

    def stop(self) -> None:
        self._stop.set()


@pytest.fixture()
def transcribing(speech: Speech) -> Iterator[Callable[[str], Transcribing]]:
    started: list[tuple[Transcribing, threading.Thread]] = []

    def start(url: str) -> Transcribing:
        client = Transcribing(url, speech.command_wav)
        thread = threading.Thread(target=client.run, daemon=True)
        thread.start()
        started.append((client, thread))
        return client

    yield start
    for client, thread in started:
        client.stop()
        thread.join(timeout=180)


def _write(path: Path, **variables: str) -> None:
    path.write_text("".join(f"AISTACK_STT_{k.upper()}={v}\n" for k, v in variables.items()))


def _poll(server: ServerProcess, done: Callable[[dict], bool], timeout: float = 300) -> list[dict]:
    """Every /health body until `done` holds for one (the last)."""
    seen: list[dict] = []
    deadline = time.monotonic() + timeout
    while True:
        seen.append(server.health())
        if done(seen[-1]):
            return seen
        assert time.monotonic() < deadline, f"/health never got there: {seen[-1]}"
        time.sleep(0.1)


def _swapped(count: int) -> Callable[[dict], bool]:
    """The `count`-th SIGHUP's swap has ended, done or failed."""

    def done(body: dict) -> bool:
        swap = body.get("swap") or {}
        return swap.get("requests") == count and swap.get("state") != "loading"

    return done


def test_sighup_swaps_the_model_while_every_request_is_answered(
    models_dir: Path, tmp_path: Path, transcribing
) -> None:
    model_file = tmp_path / "model.env"
    _write(model_file, model="tiny.en", compute_type="int8")
    server = start_process(
        {
            "AISTACK_STT_MODEL": "tiny.en",  # what systemd put in the environment at start
            "AISTACK_STT_COMPUTE_TYPE": "int8",
            "AISTACK_STT_MODEL_ENV_FILE": str(model_file),
            "AISTACK_STT_MODEL_DIR": str(models_dir),
            "AISTACK_STT_DEVICE": "cpu",
        },
        log=tmp_path / "serve.log",
    )
    try:
        assert server.health()["swap"] is None
        client = transcribing(server.url)
        client.wait_for(1)

        # tiny.en -> base: the old model answers until base is loaded and warmed up.
        _write(model_file, model="base", compute_type="int8")
        server.proc.send_signal(signal.SIGHUP)
        seen = _poll(server, _swapped(1))
        assert all(body["status"] == "ok" for body in seen), seen
        for body in seen:  # before the switch: tiny.en serves, and base is said to be next
            if body["model"] == "tiny.en" and (body["swap"] or {}).get("state") == "loading":
                assert body["next_model"] == "base", body
        last = seen[-1]
        assert (last["model"], last["compute_type"], last["next_model"]) == ("base", "int8", None)
        assert last["swap"]["state"] == "done" and last["swap"]["error"] is None, last
        assert last["models_loaded"] == ["base"]
        answered = len(client.outcomes)
        client.wait_for(answered + 2)  # answered by base

        # A model that does not exist: nothing changes, /health says why.
        _write(model_file, model="no-such-model", compute_type="int8")
        server.proc.send_signal(signal.SIGHUP)
        last = _poll(server, _swapped(2))[-1]
        assert (last["status"], last["model"], last["models_loaded"]) == ("ok", "base", ["base"])
        assert last["swap"]["state"] == "failed" and last["swap"]["model"] == "no-such-model"
        assert "no-such-model" in last["swap"]["error"], last
        assert "the running model stays" in last["swap"]["error"]

        # The same model in another compute type replaces it too.
        _write(model_file, model="base", compute_type="float32")
        server.proc.send_signal(signal.SIGHUP)
        last = _poll(server, _swapped(3))[-1]
        assert (last["model"], last["compute_type"]) == ("base", "float32"), last
        answered = len(client.outcomes)
        client.wait_for(answered + 2)
        client.stop()
    finally:
        server.stop()
    failed = [o.text for o in client.outcomes if not o.ok]
    assert failed == [], failed
    missing = [o.text for o in client.outcomes if not _words(o.text) >= WORDS]
    assert missing == [], missing
    assert "Traceback" not in server.log_text()


def test_sighup_without_a_change_keeps_the_loaded_model(models_dir: Path, tmp_path: Path) -> None:
    model_file = tmp_path / "model.env"
    _write(model_file, model="tiny.en")
    server = start_process(
        {
            "AISTACK_STT_MODEL": "tiny.en",
            "AISTACK_STT_MODEL_ENV_FILE": str(model_file),
            "AISTACK_STT_MODEL_DIR": str(models_dir),
            "AISTACK_STT_DEVICE": "cpu",
        },
        log=tmp_path / "serve.log",
    )
    try:
        server.proc.send_signal(signal.SIGHUP)
        last = _poll(server, _swapped(1))[-1]
        assert last["swap"]["state"] == "done" and last["model"] == "tiny.en"
        metrics = server.client().get("/metrics").text
        assert 'aistack_stt_model_loads_total{model="tiny.en",outcome="ok"} 1' in metrics
        assert "aistack_stt_model_unloads_total{" not in metrics  # nothing loaded again
        # An unreadable file: the running model stays, /health names the file.
        model_file.unlink()
        server.proc.send_signal(signal.SIGHUP)
        last = _poll(server, _swapped(2))[-1]
        assert last["status"] == "ok" and last["swap"]["state"] == "failed"
        assert str(model_file) in last["swap"]["error"]
    finally:
        server.stop()


# -- what a SIGHUP reads (model_reload.py) ----------------------------------------------------


def _running(**environ: str) -> Settings:
    return load_settings(environ=environ)


def test_model_file_changes_only_the_model_settings_and_names_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "model.env"
    path.write_text(
        "# written by the role\nAISTACK_STT_MODEL=base\nAISTACK_STT_COMPUTE_TYPE=float32\n"
        "AISTACK_STT_PORT=9000\nHF_HUB_OFFLINE=1\n"
    )
    environ = {"AISTACK_STT_MODEL": "tiny.en", "AISTACK_STT_INTERIM_MODEL": "tiny.en"}
    running = _running(**environ)
    plan = read_plan(path, running, environ=environ)
    assert (plan.settings.model, plan.settings.compute_type) == ("base", "float32")
    # Gone from the file: back to its default, as at the next start.
    assert plan.settings.live.interim_model is None
    assert plan.settings.port == running.port == 8000  # needs a restart: named, not applied
    assert plan.restart_needed == ("AISTACK_STT_PORT", "HF_HUB_OFFLINE")


def test_command_line_flags_still_win_over_the_model_file(tmp_path: Path) -> None:
    path = tmp_path / "model.env"
    path.write_text("AISTACK_STT_MODEL=base\n")
    running = load_settings({"model": "tiny.en"}, environ={})
    assert read_plan(path, running, {"model": "tiny.en"}, environ={}).settings.model == "tiny.en"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("AISTACK_STT_COMPUTE_TYPE=int3\n", "compute_type 'int3' is not one of"),
        ("AISTACK_STT_MODLE=base\n", "AISTACK_STT_MODLE is not a setting"),
        ("just words\n", "expected NAME=VALUE"),
    ],
)
def test_a_wrong_model_file_is_refused_with_the_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "model.env"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(message)):
        read_plan(path, _running(), environ={})
