"""The plain Engine: the reference implementation of the transcription seam."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aistack_stt.audio import decode
from aistack_stt.config import Settings
from aistack_stt.engine import Engine, Segment, TranscriptionRequest
from aistack_stt.errors import APIError
from aistack_stt.models import ModelManager
from stt_testkit import Speech


def test_engine_reports_segments_as_they_come_and_refuses_bad_requests(
    models_dir: Path, speech: Speech
) -> None:
    models = ModelManager(Settings(model="tiny.en", model_dir=models_dir, device="cpu"))
    engine = Engine(models)
    audio = decode(speech.command_wav.read_bytes(), "audio/wav")
    seen: list[Segment] = []

    async def run() -> None:
        result = await engine.transcribe(
            TranscriptionRequest(audio=audio, model="whisper-1"), on_segment=seen.append
        )
        assert "kitchen" in result.text.lower()
        assert [s.text for s in seen] == [s.text for s in result.segments]
        assert result.language == "en" and 3.0 < result.duration < 5.0
        with pytest.raises(APIError) as info:
            await engine.transcribe(
                TranscriptionRequest(audio=audio, model="tiny.en", task="translate")
            )
        assert info.value.status == 400
        with pytest.raises(APIError) as info:
            await engine.transcribe(TranscriptionRequest(audio=audio, model="nope"))
        assert info.value.status == 404
        # Two requests for one model run one after the other, both complete.
        both = await asyncio.gather(
            engine.transcribe(TranscriptionRequest(audio=audio, model="tiny.en")),
            engine.transcribe(TranscriptionRequest(audio=audio, model="tiny.en")),
        )
        assert all("kitchen" in r.text.lower() for r in both)

    try:
        asyncio.run(run())
    finally:
        engine.close()
        models.close()
    assert "aistack_stt_queue_depth 0\n" in models.metrics.render()
