"""Opt-in capture of live sessions: each session's audio and transcript kept in a directory.

A privacy choice, off by default (`capture_dir` unset). When on, every live session whose
client does not opt out (`"capture": false` in its options; gRPC: the attribute
`capture=false`) is written as `<time>-<id>.wav` (16 kHz mono PCM16, what the model heard)
and `<time>-<id>.json` (its finals) when it ends. The writing happens on one background
thread, never on the event loop or in a session's path; after each write the directory is
cut back to its caps (`capture_max_mb`, `capture_max_files`, `capture_max_age_h`), oldest
first. The directory is 0700 and the files 0600: what was said stays with the server's user.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
import uuid
import wave
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("aistack_stt.capture")
SAMPLE_RATE = 16000
MAX_SESSION_BYTES = SAMPLE_RATE * 2 * 3600  # one hour of audio per session at most


@dataclass
class Recording:
    """One session's audio and finals, filled by the session (event loop only)."""

    store: CaptureStore
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started: float = field(default_factory=time.time)
    pcm: bytearray = field(default_factory=bytearray)
    finals: list[dict] = field(default_factory=list)
    truncated: bool = False
    done: bool = False

    def audio(self, pcm: bytes) -> None:
        room = min(self.store.max_bytes, MAX_SESSION_BYTES) - len(self.pcm)
        if len(pcm) > room:
            self.truncated = True
            pcm = pcm[: max(0, room)]
        self.pcm += pcm

    def final(self, text: str, start: float, end: float, language: str) -> None:
        self.finals.append({"text": text, "start": start, "end": end, "language": language})

    def close(self) -> None:
        if not self.done:
            self.done = True
            self.store.submit(self)


class CaptureStore:
    """The capture directory's one owner: a writer thread and the retention caps."""

    def __init__(self, directory: Path, max_mb: float, max_files: int, max_age_h: float) -> None:
        self.directory = directory
        self.max_bytes = int(max_mb * 1024 * 1024)
        self.max_files = max_files
        self.max_age_s = max_age_h * 3600
        self._queue: queue.Queue[Recording | None] = queue.Queue(maxsize=64)
        self._thread: threading.Thread | None = None

    def recording(self) -> Recording:
        return Recording(self)

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        self._thread = threading.Thread(target=self._run, name="aistack-stt-capture", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def submit(self, recording: Recording) -> None:
        try:
            self._queue.put_nowait(recording)
        except queue.Full:  # the disk is slower than the sessions: drop, never block them
            log.warning("capture: dropped session %s, the writer is behind", recording.id)

    def _run(self) -> None:
        while (recording := self._queue.get()) is not None:
            try:
                self._write(recording)
                self.enforce()
            except OSError as exc:
                log.warning("capture: could not write session %s: %s", recording.id, exc)

    def _write(self, rec: Recording) -> None:
        if not rec.pcm:
            return
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(rec.started))
        base = self.directory / f"{stamp}-{rec.id}"
        old = os.umask(0o077)
        try:
            with wave.open(str(base.with_suffix(".wav")), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(SAMPLE_RATE)
                out.writeframes(bytes(rec.pcm))
            transcript = {
                "id": rec.id,
                "started_at": rec.started,
                "audio_seconds": len(rec.pcm) / 2 / SAMPLE_RATE,
                "truncated": rec.truncated,
                "finals": rec.finals,
            }
            # Whole or not at all: whoever reads the directory never sees half a transcript.
            part = base.with_name(base.name + ".json.part")
            part.write_text(json.dumps(transcript, indent=1))
            os.replace(part, base.with_suffix(".json"))
        finally:
            os.umask(old)

    def enforce(self, now: float | None = None) -> None:
        """Delete the oldest sessions until the directory is within every cap."""
        now = time.time() if now is None else now
        sessions: dict[str, list[Path]] = {}
        for path in self.directory.iterdir():
            if path.suffix in (".wav", ".json") and path.is_file():
                sessions.setdefault(path.stem, []).append(path)
        ordered = sorted(sessions.items(), key=lambda item: max(p.stat().st_mtime for p in item[1]))
        total = sum(p.stat().st_size for _, paths in ordered for p in paths)
        while ordered:
            stem, paths = ordered[0]
            age = now - max(p.stat().st_mtime for p in paths)
            if total <= self.max_bytes and len(ordered) <= self.max_files and age <= self.max_age_s:
                break
            for p in paths:
                total -= p.stat().st_size
                p.unlink(missing_ok=True)
            ordered.pop(0)
