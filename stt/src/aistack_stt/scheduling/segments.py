"""A decoded window's raw segment → the API's `Segment`, in the request's own time.

Long files are cut at pauses and their silences removed before decoding (batching.py), so
the times a window reports are in speech-only time; `SpeechTimestampsMap` maps them back.
"""

from __future__ import annotations

from faster_whisper.vad import SpeechTimestampsMap

from ..engine import Segment, Word


def to_segment(index: int, raw: dict, ts_map: SpeechTimestampsMap | None) -> Segment:
    start, end = float(raw["start"]), float(raw["end"])
    words = None
    if raw.get("words") is not None:
        words = []
        for w in raw["words"]:
            ws, we = float(w["start"]), float(w["end"])
            if ts_map is not None:
                chunk = ts_map.get_chunk_index((ws + we) / 2)
                ws, we = ts_map.get_original_time(ws, chunk), ts_map.get_original_time(we, chunk)
            words.append(Word(ws, we, w["word"], float(w["probability"])))
        if words:
            start, end = words[0].start, words[-1].end
    elif ts_map is not None:
        start = ts_map.get_original_time(start)
        end = ts_map.get_original_time(end, is_end=True)
    return Segment(
        id=index,
        seek=int(raw["seek"]),
        start=round(start, 3),
        end=round(end, 3),
        text=raw["text"],
        tokens=list(raw["tokens"]),
        temperature=float(raw["temperature"]),
        avg_logprob=float(raw["avg_logprob"]),
        compression_ratio=float(raw["compression_ratio"]),
        no_speech_prob=float(raw["no_speech_prob"]),
        words=words,
    )
