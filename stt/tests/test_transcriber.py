"""The scheduler as a `Transcriber`, called directly (no HTTP), with the real tiny.en weights."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from pathlib import Path

import numpy as np
import pytest
from aistack_stt.audio import decode
from aistack_stt.config import SchedulerSettings, Settings
from aistack_stt.engine import Segment, Transcriber, TranscriptionRequest, TranscriptionResult
from aistack_stt.errors import APIError
from aistack_stt.models import ModelManager
from aistack_stt.scheduling import Scheduler
from faster_whisper import decode_audio
from stt_testkit import Speech

# Distinct sentences: repeated text would fail Whisper's compression check and be decoded
# again by random sampling, and two runs could no longer be compared word for word.
MEETING = (
    "Good morning everyone, let us start with the budget for the new kitchen.",
    "The plumber says the pipes under the sink must be replaced before winter.",
    "Anna will call the electrician on Monday about the lights in the garage.",
    "We still need three quotes for the windows on the north side of the house.",
    "The garden shed can wait until spring, when the ground is dry again.",
    "Peter found a cheaper supplier for the tiles in the upstairs bathroom.",
    "Please send your receipts to me by Friday so I can update the spreadsheet.",
    "Next week we meet at seven in the evening, after the children are asleep.",
    "If the weather is good, the painters will start on the fence on Tuesday.",
    "The insurance company wants photos of the damaged roof before they pay.",
    "Maria asked whether the old boiler can be recycled or must go to the dump.",
    "Our neighbours offered to lend us their ladder and a box of spare screws.",
    "The carpet in the hallway is worn out, so we should look for a runner.",
    "I will check the warranty on the dishwasher, it has been leaking again.",
    "Somebody has to water the tomatoes while we are away in August.",
    "The bank closes early on Wednesdays, so transfers must be sent by noon.",
    "That is everything for today, thank you all for coming to this meeting.",
)


def _scheduler(models_dir: Path, cpu_threads: int, **tuning) -> Scheduler:
    models = ModelManager(
        Settings(model="tiny.en", model_dir=models_dir, device="cpu", cpu_threads=cpu_threads)
    )
    return Scheduler(models, SchedulerSettings(**tuning))


def _close(scheduler: Scheduler) -> None:
    scheduler.close()
    scheduler.models.close()


def test_the_scheduler_reports_segments_as_they_come_and_refuses_bad_requests(
    models_dir: Path, speech: Speech
) -> None:
    scheduler = _scheduler(models_dir, 2)
    assert isinstance(scheduler, Transcriber)
    audio = decode(speech.command_wav.read_bytes(), "audio/wav")
    seen: list[Segment] = []

    async def run() -> None:
        result = await scheduler.transcribe(
            TranscriptionRequest(audio=audio, model="whisper-1"), on_segment=seen.append
        )
        assert "kitchen" in result.text.lower()
        assert [s.text for s in seen] == [s.text for s in result.segments]
        assert result.language == "en" and 3.0 < result.duration < 5.0
        with pytest.raises(APIError) as info:
            await scheduler.transcribe(
                TranscriptionRequest(audio=audio, model="tiny.en", task="translate")
            )
        assert info.value.status == 400 and "English-only" in info.value.message
        with pytest.raises(APIError) as info:
            await scheduler.transcribe(
                TranscriptionRequest(audio=audio, model="tiny.en", language="de")
            )
        assert info.value.status == 400 and info.value.param == "language"
        with pytest.raises(APIError) as info:
            await scheduler.transcribe(TranscriptionRequest(audio=audio, model="nope"))
        assert info.value.status == 404
        both = await asyncio.gather(
            scheduler.transcribe(TranscriptionRequest(audio=audio, model="tiny.en")),
            scheduler.transcribe(TranscriptionRequest(audio=audio, model="tiny.en")),
        )
        assert all("kitchen" in r.text.lower() for r in both)

    try:
        asyncio.run(run())
    finally:
        _close(scheduler)
    assert "aistack_stt_queue_depth 0\n" in scheduler.metrics.render()
    assert "aistack_stt_transcriptions_in_progress 0\n" in scheduler.metrics.render()


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    """About a minute of a meeting, spoken slowly, with pauses VAD can cut at."""
    d = tmp_path_factory.mktemp("long")
    pause = np.zeros(16000, dtype=np.float32)
    parts = []
    for n, sentence in enumerate(MEETING):
        wav = d / f"{n}.wav"
        speak = ["espeak-ng", "-v", "en-us", "-s", "120", "-w", str(wav), sentence]
        subprocess.run(speak, check=True)
        parts += [decode_audio(str(wav), sampling_rate=16000), pause]
    return np.concatenate(parts)


def _transcribe(scheduler: Scheduler, audio: np.ndarray, copies: int):
    """`copies` requests of `audio` at once; their results and who delivered each segment."""
    delivered: list[list[tuple[str, Segment]]] = [[] for _ in range(copies)]

    async def run() -> list[TranscriptionResult]:
        def collect(n: int):
            return lambda s: delivered[n].append((threading.current_thread().name, s))

        return await asyncio.gather(
            *(
                scheduler.transcribe(
                    TranscriptionRequest(audio=audio, model="tiny.en"), on_segment=collect(n)
                )
                for n in range(copies)
            )
        )

    return asyncio.run(run()), delivered


def test_a_long_file_decoded_by_several_bulk_workers_at_once_reads_as_when_decoded_alone(
    models_dir: Path, long_recording: np.ndarray
) -> None:
    # Both schedulers decode every window alone (max_batch 1) on a one-thread replica, so the
    # only difference is how many workers deliver the windows of one file at the same time.
    alone = _scheduler(models_dir, 1, bulk_workers=1, max_batch=1, batch_wait_s=0)
    try:
        [reference], _ = _transcribe(alone, long_recording, 1)
    finally:
        _close(alone)
    windows = alone.health()["lanes"]["bulk"]["batches"]
    assert windows >= 3, "the recording must be cut into several windows"
    assert {"kitchen", "meeting"} <= set(reference.text.lower().replace(".", " ").split())
    # Greedy decoding throughout, so the two runs can be compared word for word.
    assert {s.temperature for s in reference.segments} == {0.0}

    together = _scheduler(models_dir, 4, bulk_workers=4, max_batch=1, batch_wait_s=0)
    try:
        results, delivered = _transcribe(together, long_recording, 2)
    finally:
        _close(together)
    workers = {name for per_request in delivered for name, _ in per_request}
    assert len(workers) >= 2, f"one worker delivered everything: {workers}"
    expected = [(s.text, s.start, s.end) for s in reference.segments]
    for result, per_request in zip(results, delivered, strict=True):
        assert result.text == reference.text
        assert [(s.text, s.start, s.end) for s in result.segments] == expected
        # What a streaming client saw: every segment once, in order, numbered in order.
        assert [s for _, s in per_request] == result.segments
        assert [s.id for _, s in per_request] == list(range(len(expected)))
