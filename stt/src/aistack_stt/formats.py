"""Render a transcription result in the response formats OpenAI's audio API defines."""

from __future__ import annotations

import json

from .engine import Segment, TranscriptionResult


def as_json(result: TranscriptionResult) -> dict:
    return {
        "text": result.text,
        "usage": {"type": "duration", "seconds": round(result.duration, 3)},
    }


def as_verbose_json(result: TranscriptionResult, words: bool, segments: bool = True) -> dict:
    body: dict = {
        "task": result.task,
        "language": result.language,
        "language_probability": round(result.language_probability, 4),
        "duration": round(result.duration, 3),
        "text": result.text,
    }
    if segments:
        body["segments"] = [_segment(s) for s in result.segments]
    if words:
        body["words"] = [
            {
                "word": w.word,
                "start": round(w.start, 3),
                "end": round(w.end, 3),
                "probability": round(w.probability, 4),
            }
            for w in result.words
        ]
    return body


def _segment(s: Segment) -> dict:
    return {
        "id": s.id,
        "seek": s.seek,
        "start": round(s.start, 3),
        "end": round(s.end, 3),
        "text": s.text,
        "tokens": s.tokens,
        "temperature": s.temperature,
        "avg_logprob": s.avg_logprob,
        "compression_ratio": s.compression_ratio,
        "no_speech_prob": s.no_speech_prob,
    }


def _timestamp(seconds: float, decimal: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


def as_srt(result: TranscriptionResult) -> str:
    blocks = []
    for n, s in enumerate(result.segments, start=1):
        times = f"{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}"
        blocks.append(f"{n}\n{times}\n{s.text.strip()}\n")
    return "\n".join(blocks)


def as_vtt(result: TranscriptionResult) -> str:
    cues = [
        f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{s.text.strip()}\n"
        for s in result.segments
    ]
    return "WEBVTT\n\n" + "\n".join(cues)


def sse(event: dict) -> str:
    """One server-sent event carrying a JSON object, as OpenAI's streaming responses do."""
    return f"data: {json.dumps(event, ensure_ascii=False)}\n\n"
