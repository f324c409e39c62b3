"""Finals ahead of interims, and interims giving way under backpressure, on the real
scheduler with real tiny.en weights (no HTTP: the order of admission is the point)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aistack_stt.config import SchedulerSettings, Settings
from aistack_stt.engine import TranscriptionRequest
from aistack_stt.errors import QueueFull
from aistack_stt.models import ModelManager
from aistack_stt.scheduling import Scheduler
from faster_whisper import decode_audio


@pytest.fixture(scope="module")
def scheduler(models_dir: Path):
    models = ModelManager(
        Settings(model="tiny.en", model_dir=models_dir, device="cpu", cpu_threads=2)
    )
    models.get("tiny.en")
    engine = Scheduler(models, SchedulerSettings(max_batch=2, separate_lanes="never"))
    yield engine
    engine.close()
    models.close()


def test_a_final_is_decoded_before_interims_that_were_queued_first(scheduler, speech) -> None:
    audio = decode_audio(str(speech.command_wav), sampling_rate=16000)

    async def run() -> tuple[list[str], int]:
        done: list[str] = []
        refused = 0

        async def ask(name: str, interim: bool) -> None:
            nonlocal refused
            request = TranscriptionRequest(
                audio=audio, model="tiny.en", interim=interim, beam_size=1 if interim else 5
            )
            try:
                await scheduler.transcribe(request)
            except QueueFull:
                refused += 1
                return
            done.append(name)

        # Admission happens as each task starts, all in this one tick: the worker thread can
        # have taken one batch (two interims) at most before the final is queued.
        tasks = [asyncio.create_task(ask(f"interim-{i}", True)) for i in range(4)]
        tasks.append(asyncio.create_task(ask("final", False)))
        await asyncio.gather(*tasks)
        return done, refused

    done, refused = asyncio.run(run())
    assert refused == 0, done
    assert "final" in done
    # At least the two interims still queued when the final came were decoded after it.
    assert len(done) - done.index("final") - 1 >= 2, done


def test_interims_are_coalesced_then_paused_as_work_piles_up(scheduler, speech) -> None:
    audio = decode_audio(str(speech.command_wav), sampling_rate=16000)

    async def run() -> tuple[int, int, list[str]]:
        ok = refused = 0
        levels = []

        async def ask(interim: bool) -> None:
            nonlocal ok, refused
            request = TranscriptionRequest(audio=audio, model="tiny.en", interim=interim)
            try:
                await scheduler.transcribe(request)
                ok += interim
            except QueueFull:
                refused += 1

        # Twelve finals fill the queue far past 4 x max_batch: critical, whatever the worker
        # has taken meanwhile. Interims asked now are refused; the finals all complete.
        finals = [asyncio.create_task(ask(False)) for _ in range(12)]
        await asyncio.sleep(0)
        levels.append(scheduler.backpressure())
        interims = [asyncio.create_task(ask(True)) for _ in range(3)]
        await asyncio.gather(*finals, *interims)
        levels.append(scheduler.backpressure())
        return ok, refused, levels

    ok, refused, levels = asyncio.run(run())
    assert levels == ["critical", "normal"]
    assert refused == 3 and ok == 0


def test_an_interim_not_started_in_time_is_dropped_and_a_final_never_is(scheduler, speech) -> None:
    """A live session's interim carries `start_by`: queued behind a final past that moment,
    it is refused (the session skips it) instead of showing words the user said long ago."""
    audio = decode_audio(str(speech.command_wav), sampling_rate=16000)

    async def run() -> dict[str, str]:
        outcome: dict[str, str] = {}

        async def ask(name: str, **fields) -> None:
            request = TranscriptionRequest(audio=audio, model="tiny.en", **fields)
            try:
                result = await scheduler.transcribe(request)
                outcome[name] = result.text
            except QueueFull:
                outcome[name] = "refused"

        # Admitted in this one tick behind a final: the interims can start only after it.
        # `start_by` is already due for the first (any wait is too long) and an hour away for
        # the second; a final with the same field would mean nothing (only interims drop).
        await asyncio.gather(
            ask("final", beam_size=5),
            ask("late interim", interim=True, beam_size=1, start_by=time.monotonic()),
            ask("patient interim", interim=True, beam_size=1, start_by=time.monotonic() + 3600),
        )
        return outcome

    outcome = asyncio.run(run())
    assert outcome["late interim"] == "refused", outcome
    assert "kitchen" in outcome["final"].lower(), outcome
    assert "kitchen" in outcome["patient interim"].lower(), outcome
    assert scheduler.backpressure() == "normal"


def test_an_interim_encodes_only_its_audio_and_still_gets_the_words(models_dir, speech) -> None:
    """The encoder is most of an interim's cost on a CPU: an interim gives it the audio and
    a second of padding, a final the 30 s Whisper was trained on. Both read the command."""
    from aistack_stt.batching import BatchDecoder, DecodeOptions, split_windows
    from faster_whisper import WhisperModel

    model = WhisperModel(str(models_dir / "tiny.en"), device="cpu", cpu_threads=2)
    seen: list[int] = []
    encode = model.encode
    model.encode = lambda features: seen.append(features.shape[-1]) or encode(features)
    decoder = BatchDecoder(model)
    audio = decode_audio(str(speech.command_wav), sampling_rate=16000)
    texts = {}
    for kind, interim in (("interim", True), ("final", False)):
        request = TranscriptionRequest(audio=audio, model="tiny.en", interim=interim)
        windows, _ = split_windows(audio)
        [result] = decoder.decode(windows, DecodeOptions.for_request(request))
        texts[kind] = " ".join(s["text"] for s in result.segments).lower()
    audio_frames = audio.shape[0] / 160  # 100 frames a second
    assert seen[1] == 3000, seen
    assert audio_frames + 100 <= seen[0] < audio_frames + 200 and seen[0] % 100 == 0, seen
    assert "kitchen" in texts["interim"] and "kitchen" in texts["final"], texts
