"""Decode many ≤30 s windows, from any number of requests, in one CTranslate2 call.

Whisper always looks at 30 s of audio. A request is cut into such windows (a short clip is
one window; a long file is cut at pauses found by Silero VAD, as faster-whisper's
BatchedInferencePipeline does), and windows that share decoding options are stacked into one
batch: one `encode`, one `generate`. On CPU the encoder costs the same per window whether
batched or not, but the decoder's per-token steps are small matrix products that batching
makes several times cheaper, which is where the throughput under load comes from.

Unlike `WhisperModel.transcribe`, windows are decoded independently (no conditioning on the
previous window's text), which is what makes them batchable. The temperature fallback is
kept: windows whose output looks like a loop or is very unlikely are decoded again, together,
at the next temperature.

Live interims (partials) take one shortcut: their encoder sees only their audio plus a second
of padding (at least 5 s), not 30 s. CTranslate2 accepts the shorter input, and the encoder,
which is most of an interim's cost on a CPU, gets 3-6x cheaper; the words are close to the
full decode's, and the final that replaces them is decoded the usual way. Their length is
capped by their duration so a short context cannot make the decoder loop.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_compression_ratio, get_suppressed_tokens
from faster_whisper.vad import VadOptions, collect_chunks, get_speech_timestamps

from .engine import TranscriptionRequest
from .silence import DEFAULT as DEFAULT_SILENCE
from .silence import SilenceOptions

SAMPLE_RATE = 16000
WINDOW_SECONDS = 30
PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
FALLBACK_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
FIT_PAD_FRAMES, FIT_MIN_FRAMES = 100, 500  # an interim's encoder input: audio + 1 s, >= 5 s
FIT_TOKENS, FIT_TOKENS_PER_SECOND = 8, 8  # an interim's length cap


@dataclass(frozen=True)
class DecodeOptions:
    """What must be equal for two windows to share a batch (hashable: it is the batch key)."""

    task: str = "transcribe"
    beam_size: int = 5
    temperatures: tuple[float, ...] = FALLBACK_TEMPERATURES
    prompt: str | None = None
    word_timestamps: bool = False
    silence: SilenceOptions = DEFAULT_SILENCE  # thresholds for silence and temperature retries
    best_of: int = 1
    patience: float = 1.0
    languages: tuple[str, ...] | None = None  # the allow-list language detection keeps to
    fit_context: bool = False  # encode only the audio, not 30 s (live interims)

    @classmethod
    def for_request(cls, request: TranscriptionRequest) -> DecodeOptions:
        """A temperature asked for is used alone; none (or 0) gets the fallback schedule,
        unless the request does without it (a live interim: the final will be exact)."""
        if request.temperature:
            temps: tuple[float, ...] = (float(request.temperature),)
        else:
            temps = FALLBACK_TEMPERATURES if request.fallback else (0.0,)
        return cls(
            task=request.task,
            beam_size=request.beam_size,
            temperatures=temps,
            prompt=request.prompt or None,
            word_timestamps=request.word_timestamps,
            silence=request.silence,
            best_of=request.best_of,
            patience=request.patience,
            languages=request.languages,
            fit_context=request.interim,
        )


@dataclass
class Window:
    """Up to 30 s of one request's audio; `offset` is in the request's speech-only time."""

    audio: np.ndarray = field(repr=False)
    offset: float
    duration: float
    language: str | None = None  # None: detect (multilingual models only)


@dataclass
class WindowResult:
    language: str
    language_probability: float
    segments: list[dict]  # start, end (request time before VAD mapping), text, tokens, ...


def split_windows(audio: np.ndarray) -> tuple[list[Window], list[dict] | None]:
    """Cut audio into windows. Returns the windows and the VAD speech chunks used, if any.

    Audio of 30 s or less is one window, untouched. Longer audio is cut at pauses so no word
    is split between windows; the chunks are needed afterwards to map times back.
    """
    seconds = audio.shape[0] / SAMPLE_RATE
    if seconds <= WINDOW_SECONDS:
        return [Window(audio, 0.0, seconds)], None
    vad = VadOptions(max_speech_duration_s=WINDOW_SECONDS, min_silence_duration_ms=160)
    chunks = get_speech_timestamps(audio, vad)
    if not chunks:
        return [], chunks
    pieces, metadata = collect_chunks(audio, chunks, max_duration=WINDOW_SECONDS)
    windows = [
        Window(piece, float(meta["offset"]), float(meta["duration"]))
        for piece, meta in zip(pieces, metadata, strict=True)
        if piece.shape[0]
    ]
    return windows, chunks


class BatchDecoder:
    """Decodes batches of windows with one model. Not thread-safe: one per worker thread."""

    def __init__(self, model: WhisperModel) -> None:
        self.model = model
        self.multilingual = bool(model.model.is_multilingual)
        self._tokenizers: dict[tuple[str, str], Tokenizer] = {}

    def tokenizer(self, task: str, language: str) -> Tokenizer:
        key = (task, language)
        if key not in self._tokenizers:
            self._tokenizers[key] = Tokenizer(
                self.model.hf_tokenizer, self.multilingual, task=task, language=language
            )
        return self._tokenizers[key]

    def decode(self, windows: list[Window], options: DecodeOptions) -> list[WindowResult]:
        model = self.model
        frames, cap = self._context(windows, options.fit_context)
        features = np.stack(
            [pad_or_trim(model.feature_extractor(w.audio)[..., :-1], frames) for w in windows]
        )
        encoder_output = model.encode(features)
        languages = self._languages(windows, encoder_output, options.languages)
        tokenizers = [self.tokenizer(options.task, lang) for lang, _ in languages]
        prompt_tokens = tokenizers[0].encode(" " + options.prompt.strip()) if options.prompt else []
        prompts = [
            model.get_prompt(tok, previous_tokens=prompt_tokens, without_timestamps=False)
            for tok in tokenizers
        ]
        suppress = get_suppressed_tokens(tokenizers[0], [-1])
        # CTranslate2's max_length counts the prompt (a vocabulary prompt can be long).
        longest_prompt = max(len(prompt) for prompt in prompts)
        max_length = (
            model.max_length if cap is None else min(model.max_length, longest_prompt + cap)
        )

        outputs: list[dict | None] = [None] * len(windows)
        best: list[dict | None] = [None] * len(windows)
        todo = list(range(len(windows)))
        for temperature in options.temperatures:
            if not todo:
                break
            kwargs: dict = {"beam_size": options.beam_size, "patience": options.patience}
            if temperature > 0:
                kwargs = {
                    "beam_size": 1,
                    "sampling_topk": 0,
                    "sampling_temperature": temperature,
                    "num_hypotheses": options.best_of,
                }
            # A subset of the batch is decoded again: slice the encoder output by index.
            enc = encoder_output if len(todo) == len(windows) else _rows(model, features, todo)
            results = model.model.generate(
                enc,
                [prompts[i] for i in todo],
                max_length=max_length,
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=True,
                suppress_tokens=suppress,
                **kwargs,
            )
            retry = []
            for i, result in zip(todo, results, strict=True):
                tokens = result.sequences_ids[0]
                out = {
                    "tokens": tokens,
                    "avg_logprob": result.scores[0] * len(tokens) / (len(tokens) + 1),
                    "no_speech_prob": result.no_speech_prob,
                    "temperature": temperature,
                    "text": tokenizers[i].decode(tokens),
                }
                out["compression_ratio"] = get_compression_ratio(out["text"])
                if best[i] is None or out["avg_logprob"] > best[i]["avg_logprob"]:
                    best[i] = out
                silent = options.silence.window_is_silent(out["no_speech_prob"], out["avg_logprob"])
                failed = options.silence.needs_retry(out["compression_ratio"], out["avg_logprob"])
                if failed and not silent:
                    retry.append(i)
                else:
                    outputs[i] = out
            todo = retry
        for i in todo:  # every temperature failed: keep the most likely attempt
            outputs[i] = best[i]

        per_window: list[list[dict]] = []
        sizes: list[int] = []
        for window, tok, out in zip(windows, tokenizers, outputs, strict=True):
            assert out is not None
            size = int(math.ceil(window.duration) * model.frames_per_second)
            sizes.append(size)
            if options.silence.window_is_silent(out["no_speech_prob"], out["avg_logprob"]):
                per_window.append([])
                continue
            pieces, _, _ = model._split_segments_by_timestamps(
                tokenizer=tok,
                tokens=out["tokens"],
                time_offset=window.offset,
                segment_size=size,
                segment_duration=window.duration,
                seek=0,
            )
            segments = []
            for piece in pieces:
                text = tok.decode(piece["tokens"])
                if not text.strip():
                    continue
                segments.append(
                    {
                        "seek": int(window.offset * model.frames_per_second),
                        "start": float(piece["start"]),
                        "end": float(min(piece["end"], window.offset + window.duration)),
                        "text": text,
                        "tokens": piece["tokens"],
                        "temperature": out["temperature"],
                        "avg_logprob": float(out["avg_logprob"]),
                        "compression_ratio": get_compression_ratio(text),
                        "no_speech_prob": float(out["no_speech_prob"]),
                    }
                )
            per_window.append(segments)

        if options.word_timestamps and any(per_window):
            # Alignment needs every window's row of the encoder output, so all go in together.
            model.add_word_timestamps(
                per_window,
                tokenizers[0],
                encoder_output,
                sizes,
                PREPEND_PUNCTUATIONS,
                APPEND_PUNCTUATIONS,
                0.0,
            )
        return [
            WindowResult(lang, prob, segs)
            for (lang, prob), segs in zip(languages, per_window, strict=True)
        ]

    def _context(self, windows: list[Window], fit: bool) -> tuple[int, int | None]:
        """Encoder frames and the cap on new tokens: 30 s and none, or fitted to the audio."""
        frames = self.model.feature_extractor.nb_max_frames
        if not fit:
            return frames, None
        samples = max(w.audio.shape[0] for w in windows)
        audio_frames = math.ceil(samples / self.model.feature_extractor.hop_length)
        second = self.model.frames_per_second
        fitted = math.ceil((audio_frames + FIT_PAD_FRAMES) / second) * second  # whole seconds
        fitted = min(frames, max(FIT_MIN_FRAMES, fitted))
        cap = FIT_TOKENS + math.ceil(samples / SAMPLE_RATE * FIT_TOKENS_PER_SECOND)
        return fitted, cap

    def _languages(
        self, windows: list[Window], encoder_output, allowed: tuple[str, ...] | None = None
    ) -> list[tuple[str, float]]:
        if not self.multilingual:
            return [("en", 1.0)] * len(windows)
        unknown = [i for i, w in enumerate(windows) if w.language is None]
        detected: dict[int, tuple[str, float]] = {}
        if unknown:
            # Detection reads the encoder output already computed for decoding: no extra pass.
            probs = self.model.model.detect_language(encoder_output)
            for i in unknown:
                # Sorted by probability: the first allowed one is the most likely of them.
                ranked = [(token[2:-2], float(prob)) for token, prob in probs[i]]
                kept = [item for item in ranked if not allowed or item[0] in allowed]
                detected[i] = (kept or ranked)[0]
        return [
            detected[i] if w.language is None else (w.language, 1.0) for i, w in enumerate(windows)
        ]


def _rows(model: WhisperModel, features: np.ndarray, rows: list[int]):
    """Encoder output for some rows of the batch (re-encoded: a StorageView cannot be sliced)."""
    return model.encode(features[rows])
