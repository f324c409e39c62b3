"""A model decodes a short clip right after it loads, before anyone waits on it.

CTranslate2's first call on a fresh model allocates its buffers and picks its kernels:
measured with tiny.en on 2 cores, the first decode took 0.74 s and later ones 0.46 s. Warming
up on load (models.py calls `warm_up` on the loader thread, for the default model before
`/health/ready` says ready and for any model reloaded after an idle unload) moves that cost
off the first user. The clip is a quiet tone and the decode stops after a few tokens: the
aim is to run every layer once, not to transcribe.
"""

from __future__ import annotations

import logging
import time

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer

log = logging.getLogger("aistack_stt.models")

SAMPLE_RATE = 16000
CLIP_S = 1.0
MAX_TOKENS = 8


def warm_up(model: WhisperModel, name: str) -> float:
    """Decode the warm-up clip once; returns the seconds it took (logged)."""
    started = time.monotonic()
    t = np.arange(int(CLIP_S * SAMPLE_RATE), dtype=np.float32) / SAMPLE_RATE
    audio = (0.05 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    frames = model.feature_extractor.nb_max_frames
    features = pad_or_trim(model.feature_extractor(audio)[..., :-1], frames)[None]
    encoded = model.encode(features)
    multilingual = bool(model.model.is_multilingual)
    tokenizer = Tokenizer(
        model.hf_tokenizer, multilingual, task="transcribe", language="en" if multilingual else None
    )
    prompt = model.get_prompt(tokenizer, previous_tokens=[], without_timestamps=False)
    model.model.generate(encoded, [prompt], max_length=len(prompt) + MAX_TOKENS, beam_size=5)
    took = time.monotonic() - started
    log.info("warmed up model %s in %.2fs", name, took)
    return took
