"""Speaking text with Piper, one sentence at a time, off the event loop.

Why sentence by sentence: the first sentence's audio can leave while the rest is still being
synthesised (time to first audio is one sentence's work, not the whole text's), and the
sentences of all requests queue one after another on the same workers, so a short answer is
never stuck behind a long text being read aloud.

Where the work runs: `max_syntheses` worker threads of our own, at a lower CPU priority
(`nice`) than the transcription lanes: on a busy machine a voice command's transcription goes
first. ONNX Runtime's own threads are created by the worker that loads the voice, so they
inherit that priority too; they do not spin-wait between runs, so an idle voice costs no CPU.

piper-tts (GPL-3.0) is an optional dependency, imported only here and only when a voice is
configured: `pip install 'aistack-stt[tts]'`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..config import TtsSettings
from ..errors import APIError
from .voices import Voice, VoiceCatalog

log = logging.getLogger("aistack_stt.tts")

# A text piece handed to the phonemiser at once: sentences longer than this (a list, a text
# without full stops) are cut at a comma or a space, so one piece is at most a few seconds'
# work and the next request's sentence gets its turn soon.
MAX_PIECE_CHARS = 300
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n\s*\n")


def split_text(text: str, limit: int = MAX_PIECE_CHARS) -> list[str]:
    """Sentences of `text`, the long ones cut at commas or spaces into pieces of <= `limit`."""
    pieces: list[str] = []
    for sentence in _SENTENCE_END.split(text):
        sentence = " ".join(sentence.split())
        while len(sentence) > limit:
            cut = max(sentence.rfind(", ", 0, limit), sentence.rfind(" ", 0, limit))
            cut = cut + 1 if cut > 0 else limit
            pieces.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            pieces.append(sentence)
    return pieces


def _lower_priority(nice: int) -> None:
    """Runs in each worker thread as it starts: Linux keeps a nice value per thread."""
    if nice:
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)


class Synthesizer:
    """Loaded voices and the workers that speak with them; one per app."""

    def __init__(self, catalog: VoiceCatalog, settings: TtsSettings) -> None:
        self.catalog, self.settings = catalog, settings
        self._pool = ThreadPoolExecutor(
            max_workers=settings.max_syntheses,
            thread_name_prefix="aistack-tts",
            initializer=_lower_priority,
            initargs=(settings.nice,),
        )
        self._loaded: dict[str, Any] = {}  # name -> PiperVoice; written by the loads only
        self._ready = threading.Event()
        self._error: str | None = None
        self._phonemes = threading.Lock()  # espeak-ng keeps global state: one caller at once
        self._admitted = 0  # requests speaking or waiting; touched on the event loop only
        self._count_lock = threading.Lock()
        self._sentences = 0  # sentences synthesised since start (workers count, anyone reads)

    # -- loading -------------------------------------------------------------------------

    async def load(self) -> None:
        """Load every voice on a worker (its ONNX threads inherit the worker's priority)."""
        await asyncio.get_running_loop().run_in_executor(self._pool, self._load_all)

    def _load_all(self) -> None:
        try:
            for voice in self.catalog.voices.values():
                self._loaded[voice.name] = self._load_one(voice)
                log.info("voice %s loaded from %s", voice.name, voice.model)
        except Exception as exc:  # reported on every request and in the log, server stays up
            self._error = f"{type(exc).__name__}: {exc}"
            log.exception("the voices did not load")
        finally:
            self._ready.set()

    def _load_one(self, voice: Voice) -> Any:
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.settings.threads
        options.inter_op_num_threads = 1
        # Spinning threads would keep a core busy after each sentence, from the transcriber.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        config = PiperConfig.from_dict(json.loads(voice.config.read_text(encoding="utf-8")))
        session = onnxruntime.InferenceSession(
            str(voice.model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        return PiperVoice(session=session, config=config)

    async def load_voice(self, voice: Voice) -> None:
        """Load one more voice (fetched for a request) on a worker, as `load` does."""
        if voice.name not in self._loaded:
            loop = asyncio.get_running_loop()
            piper = await loop.run_in_executor(self._pool, self._load_one, voice)
            self._loaded[voice.name] = piper

    def wait_loaded(self, timeout: float) -> bool:
        """Whether the voices loaded within `timeout` seconds (False: still loading, or failed)."""
        return self._ready.wait(timeout) and self._error is None

    @property
    def state(self) -> str:
        """`loading`, `ok`, or `error: <why>` (the voice lists say it; the summary shows it)."""
        if not self._ready.is_set():
            return "loading"
        return "ok" if self._error is None else f"error: {self._error}"

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self._error is None

    def close(self) -> None:
        """Queued sentences are dropped; one being synthesised finishes (a second or two)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- speaking ------------------------------------------------------------------------

    def admit(self) -> None:
        """Count a request in, or refuse it at once (503) when the queue is full."""
        if not self._ready.is_set():
            raise APIError(
                503, "the voices are still loading; retry in a few seconds",
                type="server_error", code="voice_loading",
            )  # fmt: skip
        if self._error is not None:
            raise APIError(
                503, f"the voices did not load: {self._error}",
                type="server_error", code="voice_failed",
            )  # fmt: skip
        if self._admitted >= self.settings.max_queue:
            raise APIError(
                503,
                f"the server is busy: {self.settings.max_queue} syntheses are already queued or "
                "speaking (AISTACK_STT_TTS_MAX_QUEUE); retry in a few seconds",
                type="server_error",
                code="queue_full",
            )
        self._admitted += 1

    def release(self) -> None:
        self._admitted -= 1

    @property
    def busy(self) -> int:
        """Requests speaking or waiting now."""
        return self._admitted

    @property
    def sentences(self) -> int:
        """Sentences synthesised since start."""
        with self._count_lock:
            return self._sentences

    async def speak(self, voice: Voice, text: str, speed: float = 1.0) -> AsyncIterator[bytes]:
        """16-bit mono PCM at `voice.sample_rate`, one block per sentence, as each is ready.

        The caller has called `admit()` and calls `release()` when done with the iterator.
        """
        loop = asyncio.get_running_loop()
        for piece in split_text(text):
            sentences = await loop.run_in_executor(self._pool, self._phonemize, voice, piece)
            for phonemes in sentences:
                if phonemes:
                    yield await loop.run_in_executor(
                        self._pool, self._synthesise, voice, phonemes, speed
                    )

    def _phonemize(self, voice: Voice, text: str) -> list[list[str]]:
        with self._phonemes:
            return self._loaded[voice.name].phonemize(text)

    def _synthesise(self, voice: Voice, phonemes: list[str], speed: float) -> bytes:
        from piper.config import SynthesisConfig

        piper = self._loaded[voice.name]
        config = SynthesisConfig(length_scale=piper.config.length_scale / speed)
        audio = np.asarray(piper.phoneme_ids_to_audio(piper.phonemes_to_ids(phonemes), config))
        audio = audio.reshape(-1)
        with self._count_lock:
            self._sentences += 1
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        if peak < 1e-8:
            return np.zeros(audio.size, dtype="<i2").tobytes()
        scaled = np.clip(audio / peak, -1.0, 1.0) * 32767.0
        return scaled.astype("<i2").tobytes()
