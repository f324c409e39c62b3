"""How a live session's decodes are asked of the engine: decode profile, interim model and
language allow-list, the same on every live protocol.

A decode profile is a named set of decoding parameters. Finals decode with the session's
profile (the server's `decode_profile` when the session names none); interims (partials)
always decode with `realtime`, without the temperature fallback, and, when `interim_model`
is set, with that fast model, so a small model keeps the words flowing while the accurate
one writes the finals. Interims are marked as such: the scheduler queues them behind finals
(scheduling/lanes.py) and their encoder reads only their audio (batching.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace

from ..engine import TranscriptionRequest, TranscriptionResult
from ..errors import APIError, QueueFull
from ..silence import SilenceOptions
from .capture import CaptureStore

Transcribe = Callable[[TranscriptionRequest], Awaitable[TranscriptionResult]]


@dataclass(frozen=True)
class DecodeProfile:
    beam_size: int | None  # None: the server's `beam_size`
    best_of: int
    patience: float
    temperature: float  # 0: the temperature fallback schedule when a decode looks wrong
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    compression_ratio_threshold: float = 2.4

    def apply(self, request: TranscriptionRequest) -> TranscriptionRequest:
        silence: SilenceOptions = replace(
            request.silence,
            no_speech_threshold=self.no_speech_threshold,
            log_prob_threshold=self.log_prob_threshold,
            compression_ratio_threshold=self.compression_ratio_threshold,
        )
        return replace(
            request,
            beam_size=self.beam_size or request.beam_size,
            best_of=self.best_of,
            patience=self.patience,
            temperature=self.temperature or None,
            silence=silence,
        )


PROFILES = {
    # Greedy: about half the decoder time of beam 5 on CPU (docs/benchmarks.md).
    "realtime": DecodeProfile(beam_size=1, best_of=1, patience=1.0, temperature=0.0),
    "accurate": DecodeProfile(beam_size=None, best_of=5, patience=1.0, temperature=0.0),
}


@dataclass(frozen=True)
class LiveDecoding:
    """The server's choices (settings.live), applied to every live decode by `wrap`."""

    default_profile: str = "accurate"
    # The interim model's id, or a callable that says it now (the model manager's, which a
    # model swap may change); None or empty: one model for both.
    interim_model: str | Callable[[], str | None] | None = None
    languages: tuple[str, ...] = ()
    capture: CaptureStore | None = None  # opt-in capture of sessions (capture.py)

    def wrap(self, transcribe: Transcribe) -> Transcribe:
        async def run(request: TranscriptionRequest) -> TranscriptionResult:
            request = self._check_language(request)
            if not request.interim:
                return await transcribe(
                    PROFILES[request.profile or self.default_profile].apply(request)
                )
            # An interim is shown for a moment and then replaced: one greedy decode, no
            # temperature retries (the final still has them).
            request = replace(PROFILES["realtime"].apply(request), fallback=False)
            interim = self.interim_model() if callable(self.interim_model) else self.interim_model
            if not interim:
                return await transcribe(request)
            try:
                return await transcribe(replace(request, model=interim))
            except QueueFull:
                raise
            except APIError:  # e.g. an English-only interim model in a German session
                return await transcribe(request)

        run.capture = self.capture  # type: ignore[attr-defined]  # read by LiveSession
        return run

    def for_request(
        self, request: TranscriptionRequest, profile: str | None, languages: tuple[str, ...]
    ) -> TranscriptionRequest:
        """An HTTP request: its profile if it names one, the allow-list (its own or ours)."""
        if profile is not None:
            request = PROFILES[profile].apply(request)
        return self._check_language(replace(request, languages=languages or None))

    def _check_language(self, request: TranscriptionRequest) -> TranscriptionRequest:
        allowed = request.languages or self.languages
        if not allowed:
            return request
        if request.language and request.language not in allowed:
            raise APIError(
                400,
                f"language {request.language!r} is not allowed; this server accepts "
                f"{', '.join(allowed)} (AISTACK_STT_LANGUAGES)",
                param="language",
                code="language_not_allowed",
            )
        return replace(request, languages=tuple(allowed))
